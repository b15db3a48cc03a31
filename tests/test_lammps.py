"""Tests of the LAMMPS engine on small hand-made periodic spring networks.

The pure steps of placing a network (wrapping, deformed cell, bond types, command strings) are tested
without LAMMPS; energies and forces computed by LAMMPS are compared with analytic results.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from densim import springs
from densim.lammps import (
    bond_commands,
    bond_lengths_in_cell,
    bond_type_table,
    box_commands,
    create_bond_commands,
    deformed_cell,
    format_float,
    gather_xy,
    lammps_network,
    load_lammps,
    network_energy_forces,
    new_lammps,
    place_network,
    strained_energy_density,
    wrap_into_box,
    wrapped_fractions,
)
from densim.springs import SpringNetwork, minimum_image

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
    lattice = springs.triangular_lattice(nx, ny, spacing=a)
    return lattice.positions, tuple(lattice.box), lattice.bonds


def spring_network(positions, box, bonds, l0, k):
    """A SpringNetwork from array-likes."""
    return SpringNetwork(
        np.asarray(positions, dtype=float), np.asarray(box, dtype=float), np.asarray(bonds), np.asarray(l0, dtype=float), np.asarray(k, dtype=float)
    )


def test_wrapping_keeps_coordinates_inside_the_box_bit_for_bit():
    box = np.array([3.0, 2.5])
    inside = np.array([[0.0, 0.0], [0.1, 2.4999999999999996], [2.9999999999999996, 1e-300], [1.2345678901234567, 0.3]])
    np.testing.assert_array_equal(wrap_into_box(inside, box), inside)
    # Outside: moved by whole box lengths; a tiny negative coordinate would round to exactly L, so it becomes 0.
    outside = np.array([[-0.5, 3.0], [6.25, -2.0], [-1e-20, 0.5]])
    np.testing.assert_array_equal(wrap_into_box(outside, box), [[2.5, 0.5], [0.25, 0.5], [0.0, 0.5]])


def test_wrapped_fractions_lie_in_the_unit_square():
    box = np.array([3.0, 2.5])
    positions = np.array([[-1e-20, 2.5], [1.5, -1.25], [7.5, 0.0]])
    np.testing.assert_array_equal(wrapped_fractions(positions, box), [[0.0, 0.0], [0.5, 0.5], [0.5, 0.0]])


def test_deformed_cell_is_upper_triangular_with_the_deformed_metric():
    box = np.array([3.0, 2.5])
    np.testing.assert_array_equal(deformed_cell(box), np.diag(box))
    eps = np.array([[0.03, -0.02], [-0.02, 0.01]])
    cell = deformed_cell(box, eps)
    h = (np.eye(2) + eps) @ np.diag(box)
    assert cell[1, 0] == 0.0 and cell[0, 0] > 0 and cell[1, 1] > 0
    # A rigid rotation of the deformed cell: same lengths and angle, hence the same metric H^T H.
    np.testing.assert_allclose(cell.T @ cell, h.T @ h, rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="symmetric"):
        deformed_cell(box, [[0.0, 0.1], [0.0, 0.0]])
    with pytest.raises(ValueError, match="determinant"):
        deformed_cell(box, np.diag([-1.0, 0.0]))


def test_bond_lengths_in_cell_follow_the_minimum_image_and_the_strain():
    lattice = springs.triangular_lattice(4, 4)
    fractions = lattice.positions / lattice.box
    lengths = bond_lengths_in_cell(fractions, lattice.bonds, np.diag(lattice.box))
    np.testing.assert_allclose(lengths, lattice.bond_lengths(), rtol=1e-15)
    eps = np.array([[0.03, -0.02], [-0.02, 0.01]])
    strained = bond_lengths_in_cell(fractions, lattice.bonds, deformed_cell(lattice.box, eps))
    np.testing.assert_allclose(strained, np.linalg.norm(lattice.bond_vectors() @ (np.eye(2) + eps).T, axis=1), rtol=1e-14)


def test_bond_type_table_gives_every_bond_its_exact_parameters():
    rng = np.random.default_rng(5)
    pairs = np.array([[1.0, 0.9], [0.1, 1.0], [0.1, 1.1], [1.0 / 3.0, 0.9]])
    choice = rng.integers(0, len(pairs), size=40)
    k, l0 = pairs[choice, 0], pairs[choice, 1]
    coeffs, types = bond_type_table(k, l0)
    assert len(coeffs) == len(pairs) and types.dtype == np.int64
    assert types.min() == 1 and types.max() == len(pairs)
    # LAMMPS harmonic has no 1/2: K = k / 2, bit for bit.
    np.testing.assert_array_equal(coeffs[types - 1], np.column_stack([k / 2, l0]))


def test_system_commands_of_a_triangle():
    bonds = np.array([[0, 1], [1, 2], [2, 0]])
    positions = np.array([[0.5, 0.5], [1.5, 0.5], [1.0, 1.4]])
    triangle = spring_network(positions, [3.0, 3.0], bonds, [1.0, 1.0, 1.0], [1.0, 1.0, 2.0])
    placed = lammps_network(triangle)
    assert placed.bond_types.tolist() == [1, 1, 2] and placed.max_degree == 2
    assert placed.ghost_cutoff > np.linalg.norm(positions[2] - positions[0])
    assert box_commands(placed, 2.0) == [
        "region box block 0 3.0 0 3.0 -0.5 0.5",
        "create_box 1 box bond/types 2 extra/bond/per/atom 2 extra/special/per/atom 2",
        "mass 1 2.0",
    ]
    sheared = lammps_network(triangle, [[0.0, 0.05], [0.05, 0.0]])
    assert box_commands(sheared, 1.0)[0].startswith("region box prism 0 ")
    assert bond_commands(placed.bond_coeffs) == ["bond_style harmonic", "bond_coeff 1 0.5 1.0", "bond_coeff 2 1.0 1.0"]
    # 1-based atom ids; only the last bond rebuilds the special list.
    assert create_bond_commands(placed.bonds, placed.bond_types) == [
        "create_bonds single/bond 1 1 2 special no",
        "create_bonds single/bond 1 2 3 special no",
        "create_bonds single/bond 2 3 1",
    ]


def test_lammps_network_hands_over_positions_bit_for_bit():
    lattice = springs.triangular_lattice(4, 4)
    np.testing.assert_array_equal(lammps_network(lattice).positions, lattice.positions)
    # Odd nodes moved by whole box lengths come back to their place, up to rounding.
    odd = np.arange(lattice.num_nodes)[:, None] % 2 == 1
    shifted = replace(lattice, positions=lattice.positions + np.where(odd, [lattice.box[0], -lattice.box[1]], 0.0))
    np.testing.assert_allclose(lammps_network(shifted).positions, lattice.positions, rtol=0, atol=1e-14)


def test_format_float_round_trips():
    for x in (0.1, 1 / 3, -2.5e-300, 1e-12, 6.02214076e23, 0.30000000000000004):
        assert float(format_float(x)) == x
    assert format_float(np.float64(0.5)) == "0.5"


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
    energy, forces = network_energy_forces(spring_network(positions, box, bonds, l0, k))

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
        net = place_network(lmp, spring_network(positions, box, bonds, l0, k))
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
    got = strained_energy_density(spring_network(positions, box, bonds, l0, k), eps, relax=False)
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
    energy, forces = network_energy_forces(spring_network(positions, box, bonds, r, k))
    assert abs(energy) < 1e-24
    assert np.abs(forces).max() < 1e-12


@pytest.mark.parametrize("kspring", [1.0, 2.5])
def test_triangular_lattice_moduli(lattice, kspring):
    positions, box, bonds, r = lattice
    net = spring_network(positions, box, bonds, r, np.full(len(bonds), kspring))
    s = 1e-4
    e_bulk = strained_energy_density(net, np.diag([s, s]))
    e_shear = strained_energy_density(net, [[0.0, s], [s, 0.0]])
    bulk = e_bulk / (2 * s**2)
    shear = e_shear / (2 * s**2)
    assert bulk == pytest.approx(SQRT3 * kspring / 2, rel=1e-4)
    assert shear == pytest.approx(SQRT3 * kspring / 4, rel=1e-4)
    # Uniaxial strain probes B + G: (1/2)(B + G) s^2 per area.
    e_uni = strained_energy_density(net, np.diag([s, 0.0]))
    assert e_uni / (0.5 * s**2) == pytest.approx(bulk + shear, rel=1e-4)


def test_disordered_lattice_moduli_are_finite_and_positive(lattice):
    positions, box, bonds, _ = lattice
    rng = np.random.default_rng(3)
    disordered = np.mod(positions + rng.normal(0.0, 0.08, size=positions.shape), box)
    # Rest lengths equal to the current lengths make the network stress free.
    r = np.linalg.norm(min_image(disordered, box, bonds), axis=1)
    k = rng.uniform(0.5, 1.5, size=len(bonds))
    net = spring_network(disordered, box, bonds, r, k)

    energy, forces = network_energy_forces(net)
    assert abs(energy) < 1e-24 and np.abs(forces).max() < 1e-12

    s = 1e-4
    strains = {"bulk": np.diag([s, s]), "shear": np.array([[0.0, s], [s, 0.0]])}
    for name, eps in strains.items():
        relaxed = strained_energy_density(net, eps)
        affine = strained_energy_density(net, eps, relax=False)
        modulus = relaxed / (2 * s**2)
        assert np.isfinite(modulus) and modulus > 0, name
        # Non-affine relaxation can only lower the energy.
        assert relaxed <= affine * (1 + 1e-9), name
    # The disordered lattice stays rigid: shear modulus of the same order as
    # the ordered one.
    assert strained_energy_density(net, strains["shear"]) / (2 * s**2) > 0.1 * SQRT3 / 4 * k.mean()


def test_rejects_malformed_networks_without_lammps():
    positions = np.array([[0.1, 0.1], [1.1, 0.1]])
    with pytest.raises(ValueError, match="half the cell width"):
        lammps_network(spring_network(positions, (2.0, 2.0), [[0, 1]], [1.0], [1.0]))
    # Short enough in the undeformed box, too long once the cell is compressed across the bond.
    with pytest.raises(ValueError, match="half the cell width"):
        lammps_network(spring_network(positions, (2.2, 2.2), [[0, 1]], [1.0], [1.0]), np.diag([0.0, -0.2]))
    with pytest.raises(ValueError, match="Nb > 0"):
        lammps_network(spring_network(positions, (3.0, 3.0), np.zeros((0, 2), dtype=int), [], []))
    with pytest.raises(ValueError, match="distinct"):
        lammps_network(spring_network(positions, (3.0, 3.0), [[1, 1]], [1.0], [1.0]))
    with pytest.raises(ValueError, match="rest_lengths"):
        lammps_network(spring_network(positions, (3.0, 3.0), [[0, 1]], [-1.0], [1.0]))
