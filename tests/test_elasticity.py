"""Linear-response moduli against analytic results, LAMMPS strain tests and exact recomputation."""

import numpy as np
import pytest

from densim.elasticity import BondRemoval, NotRigidError, isotropic_poisson_ratio, linear_response
from densim.lammps import strained_energy_density
from densim.springs import SpringNetwork, stress_free_network, triangular_lattice

SQRT3 = np.sqrt(3.0)


@pytest.mark.parametrize("spacing", [1.0, 1.7])
@pytest.mark.parametrize("mode", ["unit", "inverse_length", "inverse_square_length"])
def test_triangular_lattice_has_analytic_moduli(spacing, mode):
    net = triangular_lattice(8, 6, spacing=spacing, stiffness_mode=mode)
    k = {"unit": 1.0, "inverse_length": 1.0 / spacing, "inverse_square_length": 2.0 / spacing**2}[mode]
    moduli = linear_response(net)
    assert moduli.bulk == pytest.approx(SQRT3 * k / 2, rel=1e-6)
    assert moduli.shear == pytest.approx(SQRT3 * k / 4, rel=1e-6)
    assert moduli.poisson == pytest.approx(1 / 3, abs=1e-6)


def test_moduli_are_invariant_under_node_relabelling(jammed):
    perm = np.random.default_rng(0).permutation(jammed.num_nodes)
    inverse = np.argsort(perm)
    relabelled = stress_free_network(jammed.positions[perm], jammed.box, inverse[jammed.bonds], "inverse_length")
    a, b = linear_response(jammed), linear_response(relabelled)
    assert b.bulk == pytest.approx(a.bulk, rel=1e-10)
    assert b.shear == pytest.approx(a.shear, rel=1e-10)


def test_jammed_network_moduli_agree_with_lammps_finite_strain(jammed):
    """B and G from linear response vs energies of small strains minimised by LAMMPS."""
    s = 1e-5
    density = lambda eps: strained_energy_density(jammed, np.array(eps, dtype=float)) / s**2  # noqa: E731
    bulk = density([[s, 0], [0, s]]) / 2  # E/V = 2 B s^2
    simple_shear = density([[0, s], [s, 0]]) / 2  # E/V = 2 C_xyxy s^2
    pure_shear = 2 * density([[s, 0], [0, -s]])  # E/V = (C11 + C22 - 2 C12) s^2 / 2
    shear = (4 * simple_shear + pure_shear) / 8
    moduli = linear_response(jammed)
    assert bulk == pytest.approx(moduli.bulk, rel=0.01)
    assert shear == pytest.approx(moduli.shear, rel=0.01)


# BondRemoval's two ways of holding H^+: dense, and a sparse factorisation with rank-one terms (forced here by
# factorised_from=0 on a small network)
ROUTES = pytest.mark.parametrize("factorised_from", [10**9, 0], ids=["dense", "factorised"])


@ROUTES
def test_rank_one_removal_equals_recomputation(jammed, factorised_from):
    state = BondRemoval(jammed, refresh_every=3, factorised_from=factorised_from)
    assert state.factorised == (factorised_from == 0)
    for _ in range(5):
        stiffness, allowed = state.removal_effects()
        assert allowed.sum() > 10
        for b in np.flatnonzero(allowed):
            keep = state.active.copy()
            keep[b] = False
            exact = linear_response(jammed.without_bonds(keep))
            np.testing.assert_allclose(stiffness[b], exact.stiffness_matrix, rtol=1e-9, atol=1e-12)
        # remove the bond that lowers nu most, a typical pruning move
        state.remove(int(np.nanargmin(isotropic_poisson_ratio(stiffness))))
    current = linear_response(state.current)
    assert state.moduli.bulk == pytest.approx(current.bulk, rel=1e-9)
    assert state.moduli.shear == pytest.approx(current.shear, rel=1e-9)


@ROUTES
def test_forbidden_removals_would_open_floppy_modes(jammed, factorised_from):
    """Prune at random to the rigidity threshold: every bond whose removal is forbidden only for its
    Sherman-Morrison denominator really leaves a floppy network."""
    rng = np.random.default_rng(3)
    state = BondRemoval(jammed, factorised_from=factorised_from)
    while True:
        _, allowed = state.removal_effects()
        if not allowed.any():
            break
        state.remove(int(rng.choice(np.flatnonzero(allowed))))
    degree = state.current.degrees()
    ends = jammed.bonds
    floppy_only = state.active & (degree[ends[:, 0]] > 3) & (degree[ends[:, 1]] > 3)
    assert floppy_only.any()
    for b in np.flatnonzero(floppy_only)[:5]:
        keep = state.active.copy()
        keep[b] = False
        with pytest.raises(NotRigidError):
            linear_response(jammed.without_bonds(keep))


def test_factorised_and_dense_routes_prune_alike(jammed):
    """Greedy pruning toward nu = -1: both routes see the same removal effects at every step down to nu = -0.9, the
    factorised one's compliances kept by rank-one updates across refactorisations. (Closer to -1 the bulk modulus
    vanishes and both lose digits to round-off.)"""
    dense = BondRemoval(jammed, refresh_every=7)
    factorised = BondRemoval(jammed, refresh_every=7, factorised_from=0)
    steps = 0
    while dense.moduli.poisson > -0.9:
        (expected, allowed), (got, allowed_too) = dense.removal_effects(), factorised.removal_effects()
        np.testing.assert_array_equal(allowed_too, allowed)
        np.testing.assert_allclose(got[allowed], expected[allowed], rtol=1e-8, atol=1e-12)
        bond = int(np.nanargmin(isotropic_poisson_ratio(expected)))
        dense.remove(bond)
        factorised.remove(bond)
        steps += 1
    assert steps > 10
    assert factorised.moduli.poisson == pytest.approx(dense.moduli.poisson, abs=1e-9)
    assert factorised.factorisations > 1


def test_large_networks_factorise_with_a_symmetric_ordering_to_the_same_moduli():
    """From FACTORISED_FROM nodes SuperLU orders the Hessian symmetrically: the moduli agree with a dense solve."""
    from densim.elasticity import (FACTORISED_FROM, Moduli, affine_extensions, bond_directions, compatibility_matrix, hessian, pinned,
                                   probe_stiffness, relaxed_extensions)
    from densim.packing import contact_network, jammed_packing

    network, _ = contact_network(jammed_packing(450, 0.92, 1.4, np.random.default_rng(1)))
    assert network.num_nodes >= FACTORISED_FROM
    vectors = network.bond_vectors()
    _, unit = bond_directions(vectors)
    a = compatibility_matrix(unit, network.bonds, network.num_nodes)
    dense = hessian(network, a).toarray()[2:, 2:]
    extensions = relaxed_extensions(a, affine_extensions(unit, vectors), network.stiffness, pinned(lambda f: np.linalg.solve(dense, f)))
    expected = Moduli.from_probes(probe_stiffness(extensions, network.stiffness, network.area))
    np.testing.assert_allclose(linear_response(network).stiffness_matrix, expected.stiffness_matrix, rtol=1e-9, atol=1e-12)


def test_dangling_node_is_not_rigid():
    lattice = triangular_lattice(4, 4)
    positions = np.vstack([lattice.positions, lattice.positions[:1] + [0.3, 0.2]])
    bonds = np.vstack([lattice.bonds, [[0, lattice.num_nodes]]])
    net = stress_free_network(positions, lattice.box, bonds, "unit")
    assert isinstance(net, SpringNetwork)
    with pytest.raises(NotRigidError):
        linear_response(net)
