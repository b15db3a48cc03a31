"""Tests of the LAMMPS interface on small hand-made periodic spring networks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from densim import network
from densim.network import minimum_image

from densim.lammps import (
    build_network,
    gather_xy,
    load_lammps,
    network_energy_forces,
    new_lammps,
    strained_energy_density,
)

SQRT3 = math.sqrt(3.0)


def min_image(positions, box, bonds):
    """Minimum-image bond vectors x_j - x_i in an orthogonal periodic box."""
    return minimum_image(positions[bonds[:, 1]] - positions[bonds[:, 0]], np.asarray(box, dtype=float))


def analytic_energy_forces(positions, box, bonds, l0, k):
    d = min_image(positions, box, bonds)
    r = np.linalg.norm(d, axis=1)
    energy = 0.5 * np.sum(k * (r - l0) ** 2)
    # Force on node j along the bond is -k (r - l0) d/r; node i gets the opposite.
    fb = (-(k * (r - l0)) / r)[:, None] * d
    forces = np.zeros_like(positions)
    np.add.at(forces, bonds[:, 1], fb)
    np.add.at(forces, bonds[:, 0], -fb)
    return energy, forces


def triangular_lattice(nx, ny, a=1.0):
    """Periodic triangular lattice: positions, box and nearest-neighbour bonds."""
    lattice = network.triangular_lattice(nx, ny, spacing=a)
    return lattice.positions, tuple(lattice.box), lattice.bonds


def test_load_lammps_and_context_manager():
    lammps = load_lammps()
    assert load_lammps() is lammps
    with new_lammps() as lmp:
        assert lmp.version() > 0
    assert lmp.lmp is None  # closed on exit


def test_energy_forces_match_analytic():
    rng = np.random.default_rng(1)
    box = (3.0, 2.5)
    n = 12
    positions = rng.uniform(0.0, 1.0, size=(n, 2)) * box
    bonds = []
    for i in range(n):
        for j in range(i + 1, n):
            d = min_image(positions, box, np.array([[i, j]]))[0]
            if np.linalg.norm(d) < 1.2:
                bonds.append((i, j))
    bonds = np.array(bonds, dtype=np.int64)
    d = min_image(positions, box, bonds)
    # Some bonds must wrap around the box for the test to mean something.
    raw = positions[bonds[:, 1]] - positions[bonds[:, 0]]
    assert np.any(np.abs(raw - d) > 1.0)
    r = np.linalg.norm(d, axis=1)
    l0 = r * rng.uniform(0.8, 1.2, size=len(bonds))
    k = rng.uniform(0.5, 2.0, size=len(bonds))

    e_ref, f_ref = analytic_energy_forces(positions, box, bonds, l0, k)
    energy, forces = network_energy_forces(positions, box, bonds, l0, k)

    assert forces.shape == (n, 2)
    assert energy == pytest.approx(e_ref, rel=1e-10)
    scale = np.abs(f_ref).max()
    np.testing.assert_allclose(forces, f_ref, rtol=0.0, atol=1e-10 * scale)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-12 * scale)


def test_shared_bond_types_keep_per_bond_parameters():
    positions, box, bonds = triangular_lattice(4, 4)
    nb = len(bonds)
    rng = np.random.default_rng(2)
    # Only three distinct (k, l0) pairs: bonds must be grouped into three types.
    choice = rng.integers(0, 3, size=nb)
    l0 = np.array([0.9, 1.0, 1.1])[choice]
    k = np.array([1.0, 2.0, 2.0])[choice]
    with new_lammps() as lmp:
        net = build_network(lmp, positions, box, bonds, l0, k)
        lmp.command("run 0")
        energy = lmp.get_thermo("pe")
        forces = gather_xy(lmp, "f")
        nbond, topo = lmp.gather_bonds()
    assert len(np.unique(net.bond_types)) == 3
    assert nbond == nb
    e_ref, f_ref = analytic_energy_forces(positions, box, bonds, l0, k)
    assert energy == pytest.approx(e_ref, rel=1e-10)
    np.testing.assert_allclose(forces, f_ref, rtol=0.0, atol=1e-10)
    topo = np.ctypeslib.as_array(topo).reshape(nb, 3)
    got = {(t, *sorted((a - 1, b - 1))) for t, a, b in topo.tolist()}
    want = {(t, *sorted((a, b))) for t, (a, b) in zip(net.bond_types.tolist(), bonds.tolist())}
    assert got == want


def test_affine_energy_in_tilted_cell_matches_analytic():
    positions, box, bonds = triangular_lattice(4, 4)
    rng = np.random.default_rng(4)
    positions = np.mod(positions + rng.normal(0.0, 0.05, size=positions.shape), box)
    d = min_image(positions, box, bonds)
    l0 = np.linalg.norm(d, axis=1) * rng.uniform(0.95, 1.05, size=len(bonds))
    k = rng.uniform(0.5, 2.0, size=len(bonds))
    eps = np.array([[0.03, -0.02], [-0.02, 0.01]])
    r = np.linalg.norm(d @ (np.eye(2) + eps).T, axis=1)
    ref = 0.5 * np.sum(k * (r - l0) ** 2) / (box[0] * box[1])
    got = strained_energy_density(positions, box, bonds, l0, k, eps, relax=False)
    assert got == pytest.approx(ref, rel=1e-10)


@pytest.fixture(scope="module")
def lattice():
    positions, box, bonds = triangular_lattice(8, 8)
    r = np.linalg.norm(min_image(positions, box, bonds), axis=1)
    np.testing.assert_allclose(r, 1.0, rtol=1e-14)
    return positions, box, bonds, r


def test_triangular_lattice_is_stress_free(lattice):
    positions, box, bonds, r = lattice
    k = np.full(len(bonds), 1.7)
    energy, forces = network_energy_forces(positions, box, bonds, r, k)
    assert abs(energy) < 1e-24
    assert np.abs(forces).max() < 1e-12


@pytest.mark.parametrize("kspring", [1.0, 2.5])
def test_triangular_lattice_moduli(lattice, kspring):
    positions, box, bonds, r = lattice
    k = np.full(len(bonds), kspring)
    s = 1e-4
    e_bulk = strained_energy_density(positions, box, bonds, r, k, np.diag([s, s]))
    e_shear = strained_energy_density(positions, box, bonds, r, k, [[0.0, s], [s, 0.0]])
    bulk = e_bulk / (2 * s**2)
    shear = e_shear / (2 * s**2)
    assert bulk == pytest.approx(SQRT3 * kspring / 2, rel=1e-4)
    assert shear == pytest.approx(SQRT3 * kspring / 4, rel=1e-4)
    # Uniaxial strain probes B + G: (1/2)(B + G) s^2 per area.
    e_uni = strained_energy_density(positions, box, bonds, r, k, np.diag([s, 0.0]))
    assert e_uni / (0.5 * s**2) == pytest.approx(bulk + shear, rel=1e-4)


def test_disordered_lattice_moduli_are_finite_and_positive(lattice):
    positions, box, bonds, _ = lattice
    rng = np.random.default_rng(3)
    disordered = np.mod(positions + rng.normal(0.0, 0.08, size=positions.shape), box)
    # Rest lengths equal to the current lengths make the network stress free.
    r = np.linalg.norm(min_image(disordered, box, bonds), axis=1)
    k = rng.uniform(0.5, 1.5, size=len(bonds))

    energy, forces = network_energy_forces(disordered, box, bonds, r, k)
    assert abs(energy) < 1e-24 and np.abs(forces).max() < 1e-12

    s = 1e-4
    strains = {"bulk": np.diag([s, s]), "shear": np.array([[0.0, s], [s, 0.0]])}
    for name, eps in strains.items():
        relaxed = strained_energy_density(disordered, box, bonds, r, k, eps)
        affine = strained_energy_density(disordered, box, bonds, r, k, eps, relax=False)
        modulus = relaxed / (2 * s**2)
        assert np.isfinite(modulus) and modulus > 0, name
        # Non-affine relaxation can only lower the energy.
        assert relaxed <= affine * (1 + 1e-9), name
    # The disordered lattice stays rigid: shear modulus of the same order as
    # the ordered one.
    assert strained_energy_density(disordered, box, bonds, r, k, strains["shear"]) / (
        2 * s**2
    ) > 0.1 * SQRT3 / 4 * k.mean()


def test_rejects_bond_longer_than_half_box():
    positions = np.array([[0.1, 0.1], [1.1, 0.1]])
    with pytest.raises(ValueError, match="half the cell width"):
        network_energy_forces(positions, (2.0, 2.0), [[0, 1]], [1.0], [1.0])
