"""Elastic moduli of periodic spring networks by linear response, and exact bond removal.

The energy per area of a stress-free network under a homogeneous strain ``eps``, after the nodes relax, is

.. math::

    E / V = \\frac{1}{2V} \\left[ a^T K a - f^T H^+ f \\right], \\qquad f = A^T K a, \\quad H = A^T K A,

with ``a_b = n_b . eps . r_b`` the affine bond extensions, ``A`` the compatibility matrix and ``K = diag(k)``.
Three unit probes (``xx``, ``yy`` and the symmetric shear ``xy`` with ``eps_xy = eps_yx = 1/2``) give the
stiffness matrix ``M_pq = e_p^T K e_q / V`` of relaxed bond extensions ``e_p = a_p + A u_p``, from which

.. math::

    B = (C_{xxxx} + C_{yyyy} + 2 C_{xxyy}) / 4, \\quad
    G = (4 C_{xyxy} + C_{xxxx} + C_{yyyy} - 2 C_{xxyy}) / 8, \\quad
    \\nu = (B - G) / (B + G).

Removing bond ``b`` changes ``M`` by the Sherman-Morrison rank-one update
``dM_pq = -k_b e_pb e_qb / (V (1 - k_b [A H^+ A^T]_bb))``; a vanishing denominator means the removal opens a
floppy mode.

References
----------
Goodrich, Liu and Nagel, Phys. Rev. Lett. 114, 225501 (2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from densim.network import SpringNetwork, compatibility_matrix

PROBES = ("xx", "yy", "xy")
_PROBE_STRAINS = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.5], [0.5, 0.0]]])


#: Smallest/largest LU pivot of the pinned Hessian below which a network counts as floppy.
RIGIDITY_PIVOT_RATIO = 1e-11


class NotRigidError(ValueError):
    """The network has a floppy mode besides the two rigid translations."""


@dataclass(frozen=True)
class Moduli:
    """Elastic constants of a 2D network (energy per area)."""

    bulk: float
    shear: float
    stiffness_matrix: np.ndarray  # (3, 3) over the probes xx, yy, xy

    @property
    def poisson(self) -> float:
        """Isotropic 2D Poisson ratio ``(B - G) / (B + G)``."""
        return float(isotropic_poisson_ratio(self.stiffness_matrix))

    def poisson_ratio(self, definition: str) -> float:
        """Poisson ratio by one of :data:`POISSON_DEFINITIONS`."""
        return float(POISSON_DEFINITIONS[definition](self.stiffness_matrix))


def isotropic_poisson_ratio(m):
    """``(B - G) / (B + G)`` of probe stiffness matrices ``m`` (..., 3, 3): the orientation average."""
    bulk, shear = bulk_shear_from_probes(m)
    return (bulk - shear) / (bulk + shear)


def uniaxial_poisson_ratio(m):
    """``C_xxyy / C_yyyy``: the Poisson ratio of axial strain along x with ``sigma_yy = 0`` in an orthogonal box.

    This is what the compression protocol of :func:`densim.lammps.compress` measures at small strain. It
    differs from the isotropic value when a small network is anisotropic.
    """
    return m[..., 0, 1] / m[..., 1, 1]


#: Poisson ratio definitions a generator can target, by config name.
POISSON_DEFINITIONS = {"uniaxial_x": uniaxial_poisson_ratio, "isotropic": isotropic_poisson_ratio}


def bulk_shear_from_probes(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bulk and shear moduli from probe stiffness matrices.

    Parameters
    ----------
    m : ndarray, shape (..., 3, 3)
        ``M_pq`` over the probes ``xx, yy, xy``: ``C_xxxx = M_00``, ``C_yyyy = M_11``, ``C_xxyy = M_01``,
        ``C_xyxy = M_22``.
    """
    c11, c22, c12, c66 = m[..., 0, 0], m[..., 1, 1], m[..., 0, 1], m[..., 2, 2]
    return (c11 + c22 + 2 * c12) / 4, (4 * c66 + c11 + c22 - 2 * c12) / 8


def affine_extensions(network: SpringNetwork) -> np.ndarray:
    """Bond extensions ``n_b . eps . r_b`` under each unit probe strain, shape (Nb, 3)."""
    r = network.bond_vectors()
    n = r / np.linalg.norm(r, axis=1, keepdims=True)
    return np.einsum("bi,pij,bj->bp", n, _PROBE_STRAINS, r)


def hessian(network: SpringNetwork, compatibility: sp.csr_matrix | None = None) -> sp.csr_matrix:
    """Stiffness (dynamical) matrix ``A^T K A`` of the stress-free network, shape (2N, 2N)."""
    a = compatibility_matrix(network) if compatibility is None else compatibility
    return (a.T @ sp.diags(network.stiffness) @ a).tocsc()


def _relaxed_extensions(network: SpringNetwork, solve) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relaxed extensions ``e`` (Nb, 3), node displacements ``u`` (2N, 3) and affine forces ``f`` (2N, 3).

    ``solve`` maps right-hand sides over the free degrees of freedom (node 0 is pinned to remove the two
    rigid translations) to the solution of the reduced Hessian system.
    """
    a_mat = compatibility_matrix(network)
    affine = affine_extensions(network)
    force = a_mat.T @ (network.stiffness[:, None] * affine)
    u = np.zeros((2 * network.num_nodes, 3))
    u[2:] = -solve(force[2:])
    return affine + a_mat @ u, u, force


def linear_response(network: SpringNetwork, check_rigidity: bool = True) -> Moduli:
    """Elastic moduli by linear response, with a sparse LU factorisation of the Hessian.

    Parameters
    ----------
    network : SpringNetwork
        A stress-free network (rest lengths equal to the current bond lengths).
    check_rigidity : bool
        Raise :class:`NotRigidError` when the reduced Hessian is singular or the solve is inaccurate.

    Returns
    -------
    Moduli

    Examples
    --------
    >>> from densim.network import triangular_lattice
    >>> round(linear_response(triangular_lattice(6, 6)).poisson, 12)
    0.333333333333
    """
    h = hessian(network)[2:, 2:].tocsc()
    try:
        lu = spla.splu(h)
    except RuntimeError as err:  # SuperLU reports an exactly singular factor
        raise NotRigidError(f"the network is not rigid: {err}") from err
    if check_rigidity:
        # A floppy mode makes the reduced Hessian singular; SuperLU then returns a round-off pivot, not an error.
        pivots = np.abs(lu.U.diagonal())
        if not np.all(np.isfinite(pivots)) or pivots.min() < RIGIDITY_PIVOT_RATIO * pivots.max():
            raise NotRigidError(f"the network is not rigid (smallest/largest LU pivot {pivots.min() / pivots.max():.1e})")
    extensions, _, _ = _relaxed_extensions(network, lu.solve)
    return _moduli_from_extensions(network, extensions)


def _moduli_from_extensions(network: SpringNetwork, extensions: np.ndarray) -> Moduli:
    m = extensions.T @ (network.stiffness[:, None] * extensions) / network.area
    bulk, shear = bulk_shear_from_probes(m)
    return Moduli(float(bulk), float(shear), m)


class BondRemoval:
    """Exact moduli of a network as bonds are removed one by one, by rank-one updates.

    Holds a dense generalised inverse ``H^+`` of the Hessian (node 0 pinned; its rows and columns are zero,
    which is exact for the translation-free vectors it is applied to) and the relaxed probe extensions. The
    effect of removing any bond on the stiffness matrix is then available for all bonds at once
    (:meth:`removal_effects`), and removing one updates ``H^+`` by Sherman-Morrison in ``O(N^2)``.
    ``H^+`` is recomputed from scratch every ``refresh_every`` removals to bound round-off.

    Parameters
    ----------
    network : SpringNetwork
        A rigid, stress-free network.
    min_degree : int
        A removal may not leave a node with fewer bonds than this.
    floppy_tolerance : float
        Removals whose Sherman-Morrison denominator ``1 - k_b [A H^+ A^T]_bb`` is below this would open a
        floppy mode and are forbidden.
    refresh_every : int
        Removals between full recomputations of ``H^+``.
    refresh_below : float
        A removal whose denominator is below this amplifies round-off by its inverse, so ``H^+`` is
        recomputed right after it.
    """

    def __init__(self, network: SpringNetwork, min_degree: int = 3, floppy_tolerance: float = 1e-6, refresh_every: int = 100, refresh_below: float = 1e-2):
        self.network = network
        self.min_degree = min_degree
        self.floppy_tolerance = floppy_tolerance
        self.refresh_every = refresh_every
        self.refresh_below = refresh_below
        self.active = np.ones(network.num_bonds, dtype=bool)
        self.removed: list[int] = []
        self.factorisations = 0
        self.solves = 0
        i, j = network.bonds[:, 0], network.bonds[:, 1]
        self._dofs = np.stack([2 * i, 2 * i + 1, 2 * j, 2 * j + 1], axis=1)  # (Nb, 4)
        self._refresh()

    @property
    def current(self) -> SpringNetwork:
        """The network with the removed bonds taken out."""
        return self.network.without_bonds(self.active)

    @property
    def moduli(self) -> Moduli:
        return self._moduli

    def _refresh(self) -> None:
        net = self.current
        h = hessian(net).toarray()[2:, 2:]
        try:
            chol = scipy.linalg.cho_factor(h, lower=True, check_finite=False)
        except np.linalg.LinAlgError as err:
            raise NotRigidError("the network is not rigid (Hessian not positive definite with one node pinned)") from err
        n2 = h.shape[0]
        self._hinv = np.zeros((n2 + 2, n2 + 2))
        self._hinv[2:, 2:] = scipy.linalg.cho_solve(chol, np.eye(n2), check_finite=False)
        self.factorisations += 1
        self.solves += n2
        self._since_refresh = 0
        self._update_extensions()

    def _update_extensions(self) -> None:
        ext, _ = _relaxed_extensions_full(self.network, self.active, self._hinv)
        self._extensions = ext  # (Nb, 3), rows of removed bonds are meaningless
        self._moduli = _moduli_from_extensions(self.current, ext[self.active])

    def _bond_columns(self) -> np.ndarray:
        """Compatibility rows ``c_b`` restricted to their 4 degrees of freedom, shape (Nb, 4)."""
        r = self.network.bond_vectors()
        n = r / np.linalg.norm(r, axis=1, keepdims=True)
        return np.concatenate([-n, n], axis=1)

    def removal_effects(self) -> tuple[np.ndarray, np.ndarray]:
        """Probe stiffness matrix after removing each bond, and which removals are allowed.

        Returns
        -------
        stiffness : ndarray, shape (Nb, 3, 3)
            ``M`` of the network with that bond removed (NaN where not allowed).
        allowed : ndarray of bool, shape (Nb,)
            Active bonds whose removal keeps every node at ``min_degree`` and opens no floppy mode.
        """
        c = self._bond_columns()
        block = self._hinv[self._dofs[:, :, None], self._dofs[:, None, :]]  # (Nb, 4, 4)
        g = np.einsum("bs,bst,bt->b", c, block, c)
        k = self.network.stiffness
        denominator = 1.0 - k * g
        degree = np.bincount(self.network.bonds[self.active].ravel(), minlength=self.network.num_nodes)
        allowed = (
            self.active
            & (degree[self.network.bonds[:, 0]] > self.min_degree)
            & (degree[self.network.bonds[:, 1]] > self.min_degree)
            & (denominator > self.floppy_tolerance)
        )
        e = self._extensions
        dm = -(k / np.where(allowed, denominator, 1.0))[:, None, None] * e[:, :, None] * e[:, None, :] / self.network.area
        stiffness = self._moduli.stiffness_matrix[None] + dm
        return np.where(allowed[:, None, None], stiffness, np.nan), allowed

    def remove(self, bond: int) -> None:
        """Remove one bond and update ``H^+``, the relaxed extensions and the moduli."""
        if not self.active[bond]:
            raise ValueError(f"bond {bond} was already removed")
        dofs = self._dofs[bond]
        c = self._bond_columns()[bond]
        hc = self._hinv[:, dofs] @ c  # H^+ c_b, shape (2N,)
        k = self.network.stiffness[bond]
        denominator = 1.0 - k * (c @ hc[dofs])
        if denominator <= self.floppy_tolerance:
            raise NotRigidError(f"removing bond {bond} would open a floppy mode")
        self._hinv += (k / denominator) * np.outer(hc, hc)
        self.active[bond] = False
        self.removed.append(int(bond))
        self._since_refresh += 1
        if self._since_refresh >= self.refresh_every or denominator < self.refresh_below:
            self._refresh()
        else:
            self._update_extensions()


def _relaxed_extensions_full(network: SpringNetwork, active: np.ndarray, hinv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relaxed probe extensions of every bond (active or not) of the network restricted to ``active``.

    Parameters
    ----------
    hinv : ndarray, shape (2N, 2N)
        Generalised inverse of the Hessian of the active bonds.
    """
    a_mat = compatibility_matrix(network)
    affine = affine_extensions(network)
    k_active = np.where(active, network.stiffness, 0.0)
    force = a_mat.T @ (k_active[:, None] * affine)
    u = -hinv @ force
    return affine + a_mat @ u, u
