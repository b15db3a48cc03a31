"""Jammed packings and their contact networks."""

import numpy as np
import pytest

from densim.elasticity import linear_response
from densim.packing import contact_network, jammed_packing, soft_disk_forces


def test_fire_reaches_force_tolerance_at_the_requested_packing_fraction(packing):
    assert packing.max_force < 1e-12
    area = np.sum(np.pi * packing.diameters**2 / 4)
    assert area / np.prod(packing.box) == pytest.approx(0.92, rel=1e-12)
    assert np.sum(packing.diameters == 1.0) == np.sum(packing.diameters == 1.4) == 32


def test_minimised_packing_is_force_balanced_over_all_pairs(packing):
    n = len(packing.diameters)
    all_pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    _, forces = soft_disk_forces(packing.positions, packing.diameters, packing.box, all_pairs)
    assert np.max(np.abs(forces)) < 1e-12


def test_contact_network_is_stress_free_rigid_and_without_rattlers(jammed):
    assert jammed.degrees().min() >= 3
    np.testing.assert_allclose(jammed.bond_lengths(), jammed.rest_lengths, rtol=1e-14)
    np.testing.assert_allclose(jammed.stiffness, 1.0 / jammed.rest_lengths)
    assert jammed.mean_coordination() > 4.0
    assert linear_response(jammed).bulk > 0


def test_excess_coordination_grows_with_compression():
    z = []
    for phi in (0.86, 0.96):
        excess = [contact_network(jammed_packing(64, phi, 1.4, np.random.default_rng(s)))[0].mean_coordination() - 4 for s in range(2)]
        z.append(np.mean(excess))
    assert 0 < z[0] < z[1]


def test_same_seed_same_packing_bit_for_bit():
    a = jammed_packing(32, 0.9, 1.4, np.random.default_rng(11))
    b = jammed_packing(32, 0.9, 1.4, np.random.default_rng(11))
    assert np.array_equal(a.positions, b.positions)
