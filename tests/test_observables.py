"""Poisson ratio of a trajectory from the box, from node positions with the network (zero transverse stress) and
from the least-squares slope of displacements, on synthetic deformations. Agreement on LAMMPS ground truth is
tested in test_trajectories."""

import numpy as np
import pytest
import torch

from densim.network import minimum_image, periodic_images, triangular_lattice
from densim.observables import (
    bond_images,
    poisson_ratio_from_box,
    poisson_ratio_from_positions,
    poisson_ratio_from_slope,
    r_squared,
    zero_stress_box_y,
)


def affine_trajectory(nu, frames=6, nodes=200, strain=0.02, seed=0):
    rng = np.random.default_rng(seed)
    box0 = np.array([12.0, 9.0])
    reference = rng.uniform(0, 1, (nodes, 2)) * box0
    exx = -np.linspace(0, strain, frames)
    eyy = -nu * exx
    scale = np.stack([1 + exx, 1 + eyy], axis=1)  # (frames, 2)
    return reference[None] * scale[:, None, :], box0 * scale, exx


@pytest.mark.parametrize("nu", [-0.7, 0.0, 1 / 3, 0.9])
def test_box_and_slope_recover_an_affine_poisson_ratio(nu):
    positions, box, exx = affine_trajectory(nu)
    from_box = poisson_ratio_from_box(box)
    from_positions = poisson_ratio_from_slope(positions, exx, box[0])
    assert np.isnan(from_box[0]) and np.isnan(from_positions[0])
    np.testing.assert_allclose(from_box[1:], nu, atol=1e-12)
    np.testing.assert_allclose(from_positions[1:], nu, atol=1e-12)


def test_slope_route_ignores_periodic_wrapping():
    positions, box, exx = affine_trajectory(0.25)
    wrapped = np.mod(positions, box[:, None, :])
    np.testing.assert_allclose(
        poisson_ratio_from_slope(wrapped, exx, box[0])[1:], poisson_ratio_from_slope(positions, exx, box[0])[1:], atol=1e-12
    )


def test_slope_route_is_robust_to_uncorrelated_non_affine_noise():
    positions, box, exx = affine_trajectory(0.4, nodes=2000)
    noise = 1e-4 * np.random.default_rng(1).standard_normal(positions.shape)
    noise[0] = 0
    nu = poisson_ratio_from_slope(positions + noise, exx, box[0])
    np.testing.assert_allclose(nu[1:], 0.4, atol=0.02)


def test_r_squared():
    x = np.array([0.0, 1.0, 2.0, np.nan])
    assert r_squared(x, x) == 1.0
    assert r_squared(x[:3], np.full(3, 1.0)) == pytest.approx(0.0)


@pytest.mark.parametrize("box", [np.array([12.0, 9.0]), 1.0])
def test_minimum_image_is_the_same_on_numpy_and_torch(box):
    """Offsets of several boxes either way, exact half boxes (ties round to even) and a scalar box."""
    rng = np.random.default_rng(2)
    span = np.broadcast_to(box, (2,))
    delta = rng.uniform(-3.7, 3.7, (500, 2)) * span
    delta[:4] = [[0.5, -0.5], [1.5, -1.5], [2.5, -2.5], [-3.0, 3.0]] * span
    box_t = torch.as_tensor(box) if isinstance(box, np.ndarray) else box
    expected = minimum_image(delta, box)
    as_torch = minimum_image(torch.as_tensor(delta), box_t)
    assert np.array_equal(as_torch.numpy(), expected)
    assert np.all(np.abs(expected) <= span / 2)
    shifts = (delta - expected) / span
    np.testing.assert_allclose(shifts, np.round(shifts), atol=1e-12)
    images = periodic_images(delta, box)
    assert np.array_equal(periodic_images(torch.as_tensor(delta), box_t).numpy(), images)
    assert np.abs(images).max() >= 3
    np.testing.assert_array_equal(images[:4], [[0, 0], [2, -2], [2, -2], [-3, 3]])


def test_bond_images_bring_bonds_to_their_minimum_image():
    rng = np.random.default_rng(4)
    box = np.array([5.0, 4.0])
    reference = rng.uniform(-10, 10, (30, 2))
    bonds = rng.integers(0, 30, (50, 2))
    delta = reference[bonds[:, 1]] - reference[bonds[:, 0]]
    np.testing.assert_array_equal(delta - bond_images(reference, bonds, box) * box, minimum_image(delta, box))


def strained_lattice(exx, eyy, cells=(8, 10)):
    """A triangular lattice deformed affinely; its nodes stay in force balance by inversion symmetry."""
    net = triangular_lattice(*cells)
    scale = np.stack([1 + exx, 1 + eyy], axis=-1)  # (frames, 2)
    return net, net.positions[None] * scale[:, None, :], net.box * scale


def test_zero_stress_route_gives_one_third_on_a_triangular_lattice_strained_at_zero_transverse_stress():
    exx = -np.array([0.0, 1e-7, 1e-6, 1e-5])
    net, positions, box = strained_lattice(exx, -exx / 3)
    nu = poisson_ratio_from_positions(positions, box[:, 0], box[0], net.bonds, net.rest_lengths, net.stiffness)
    assert np.isnan(nu[0])
    np.testing.assert_allclose(nu[1:], 1 / 3, atol=1e-5)


def test_zero_stress_route_is_the_same_on_numpy_and_torch_and_ignores_node_order():
    exx = -np.array([0.0, 0.01, 0.02])
    net, positions, box = strained_lattice(exx, 0.2 * exx)
    images = bond_images(positions[0], net.bonds, box[0])
    args = (net.bonds, images, net.rest_lengths, net.stiffness)
    expected = zero_stress_box_y(positions, box[:, 0], box[0, 1], *args)
    as_torch = zero_stress_box_y(torch.as_tensor(positions), torch.as_tensor(box[:, 0]), box[0, 1], *map(torch.as_tensor, args))
    np.testing.assert_allclose(as_torch.numpy(), expected, rtol=1e-14)
    order = np.random.default_rng(0).permutation(net.num_nodes)
    relabel = np.argsort(order)[net.bonds]
    permuted = zero_stress_box_y(positions[:, order], box[:, 0], box[0, 1], relabel, images, net.rest_lengths, net.stiffness)
    np.testing.assert_allclose(permuted, expected, rtol=1e-14)


def test_zero_stress_route_names_an_undetermined_box():
    net, positions, box = strained_lattice(np.zeros(1), np.zeros(1))
    images = np.zeros((net.num_bonds, 2))
    with pytest.raises(ValueError, match="no bond crosses"):
        zero_stress_box_y(positions, box[:, 0], box[0, 1], net.bonds, images, net.rest_lengths, net.stiffness)


def test_zero_stress_route_returns_nan_for_a_diverged_frame():
    exx = -np.array([0.0, 0.01, 0.02])
    net, positions, box = strained_lattice(exx, -exx / 3)
    positions[2, 5] = np.nan
    nu = poisson_ratio_from_positions(positions, box[:, 0], box[0], net.bonds, net.rest_lengths, net.stiffness)
    assert np.isfinite(nu[1]) and np.isnan(nu[2])


def ringing(frames=200, nodes=30, omega=0.3, seed=0):
    """Nodes oscillating at angular frequency ``omega`` per frame in y, with random amplitudes and phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    x0 = rng.uniform(0, 10, (nodes, 2))
    y = 1e-3 * rng.uniform(0.5, 1.5, nodes) * np.cos(omega * t + rng.uniform(0, 2 * np.pi, nodes))
    positions = np.repeat(x0[None], frames, axis=0)
    positions[:, :, 1] += y
    return positions, np.full(frames, 10.0)


def test_difficulty_of_a_harmonic_ringing_is_known_in_closed_form():
    from densim.observables import difficulty

    omega = 0.3
    measured = difficulty([ringing(omega=omega)], history=2)
    # x_{t+1} = 2 cos(w) x_t - x_{t-1}: the acceleration is an exact linear map of the last two velocities
    assert measured["linear_floor_r2"] == pytest.approx(1.0, abs=1e-9)
    # a sinusoid's differences scale by 2 sin(w / 2); no imposed compression, so no affine part
    assert measured["acceleration_over_velocity"] == pytest.approx(2 * np.sin(omega / 2), rel=2e-2)
    assert measured["affine_acceleration_share"] == 0.0
    assert difficulty([ringing(omega=omega)], history=1)["linear_floor_r2"] < 0.99  # one velocity is not enough


def test_affine_share_separates_the_imposed_compression_from_the_network_motion():
    from densim.observables import difficulty

    positions, _ = ringing()
    t = np.arange(len(positions))
    box_x = 10.0 * (1 - 1e-5 * t**2)  # an accelerating compression, so the affine part has an acceleration
    centre = 5.0
    positions[:, :, 0] = centre + (positions[0, :, 0] - centre) * (box_x / box_x[0])[:, None]
    measured = difficulty([(positions, box_x)])
    affine = np.diff(positions[:, :, 0], n=2, axis=0)
    ringing_y = np.diff(positions[:, :, 1], n=2, axis=0)
    expected = np.sum(affine**2) / (np.sum(affine**2) + np.sum(ringing_y**2))  # x and y are orthogonal
    assert measured["affine_acceleration_share"] == pytest.approx(expected, rel=1e-6)
    # the residual motion is the ringing alone, so the floor still fits it exactly
    assert measured["linear_floor_r2"] == pytest.approx(1.0, abs=1e-6)
