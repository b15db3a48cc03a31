"""The three Poisson-ratio generators."""

import numpy as np
import pytest
import torch

from densim.elasticity import affine_extensions, bond_directions, compatibility_matrix, linear_response
from densim.springs import periodic_images
from densim.tuning import MissedPath, noise_and_prune, optimise_node_positions, prune_to_target, torch_poisson_ratio


@pytest.mark.parametrize("definition", ["uniaxial_x", "isotropic"])
def test_torch_route_matches_sparse_linear_response(jammed, definition):
    bonds = torch.as_tensor(jammed.bonds)
    box = torch.as_tensor(jammed.box)
    pos = torch.as_tensor(jammed.positions)
    images = periodic_images(pos[bonds[:, 1]] - pos[bonds[:, 0]], box)
    nu = torch_poisson_ratio(pos, box, bonds, images, "inverse_length", definition)
    assert nu.item() == pytest.approx(linear_response(jammed).poisson_ratio(definition), abs=1e-10)


def test_factorised_torch_route_matches_the_dense_one_in_value_and_gradient(jammed):
    """The sparse-LU solve with its adjoint backward against autograd through a dense solve."""
    bonds, box = torch.as_tensor(jammed.bonds), torch.as_tensor(jammed.box)
    start = torch.as_tensor(jammed.positions)
    images = periodic_images(start[bonds[:, 1]] - start[bonds[:, 0]], box)
    results = []
    for factorised in (False, True):
        positions = start.clone().requires_grad_(True)
        nu = torch_poisson_ratio(positions, box, bonds, images, "inverse_length", factorised=factorised)
        nu.backward()
        results.append((nu.item(), positions.grad.numpy()))
    (nu_dense, grad_dense), (nu_factorised, grad_factorised) = results
    assert nu_factorised == pytest.approx(nu_dense, abs=1e-12)
    assert np.abs(grad_dense).max() > 1e-3
    np.testing.assert_allclose(grad_factorised, grad_dense, rtol=1e-8, atol=1e-10 * np.abs(grad_dense).max())


def test_node_optimisation_takes_the_same_path_factorised(jammed, monkeypatch):
    dense = optimise_node_positions(jammed, -0.2, tolerance=0.005, stiffness_mode="inverse_length")
    monkeypatch.setattr("densim.tuning.FACTORISED_FROM", 0)
    factorised = optimise_node_positions(jammed, -0.2, tolerance=0.005, stiffness_mode="inverse_length")
    assert factorised.steps == dense.steps
    np.testing.assert_allclose(factorised.network.positions, dense.network.positions, rtol=0, atol=1e-9)


def test_linear_response_pieces_are_the_same_on_numpy_and_torch(jammed):
    """The sparse numpy compatibility matrix and the dense torch one hold the same entries (up to the last bit
    of the norms, which numpy and torch round differently), and so do the affine extensions."""
    vectors = jammed.bond_vectors()
    _, unit = bond_directions(vectors)
    _, unit_t = bond_directions(torch.as_tensor(vectors))
    sparse = compatibility_matrix(unit, jammed.bonds, jammed.num_nodes)
    dense = compatibility_matrix(unit_t, torch.as_tensor(jammed.bonds), jammed.num_nodes)
    assert isinstance(dense, torch.Tensor)
    np.testing.assert_allclose(dense.numpy(), sparse.toarray(), rtol=0, atol=1e-15)
    affine = affine_extensions(unit_t, torch.as_tensor(vectors)).numpy()
    np.testing.assert_allclose(affine, affine_extensions(unit, vectors), rtol=0, atol=1e-14)


@pytest.mark.parametrize("target, definition", [(-0.5, "uniaxial_x"), (0.7, "uniaxial_x"), (-0.5, "isotropic")])
def test_greedy_pruning_reaches_target(jammed, target, definition):
    result = prune_to_target(jammed, target, tolerance=0.005, definition=definition)
    assert abs(result.poisson - target) <= 0.005
    assert linear_response(result.network).poisson_ratio(definition) == pytest.approx(result.poisson, abs=1e-9)
    assert result.network.degrees().min() >= 3
    assert result.network.num_bonds == jammed.num_bonds - result.steps


def test_node_optimisation_reaches_target_and_stays_stress_free(jammed):
    result = optimise_node_positions(jammed, -0.2, tolerance=0.005, stiffness_mode="inverse_length")
    net = result.network
    assert abs(linear_response(net).poisson_ratio("uniaxial_x") + 0.2) <= 0.005
    np.testing.assert_allclose(net.bond_lengths(), net.rest_lengths, rtol=1e-12)
    assert np.all(net.rest_lengths >= 0.5 * jammed.rest_lengths - 1e-9)
    assert np.array_equal(net.bonds, jammed.bonds)


def test_noise_and_prune_lands_in_interval(jammed):
    rng = np.random.default_rng(5)
    for _ in range(50):
        result = noise_and_prune(jammed, (0.1, 0.3), rng, noise=0.2, stiffness_mode="inverse_length")
        if not isinstance(result, MissedPath):
            break
    assert not isinstance(result, MissedPath)
    assert 0.1 <= linear_response(result.network).poisson_ratio("uniaxial_x") <= 0.3
    assert result.network.mean_coordination() >= 4.1
