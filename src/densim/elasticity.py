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

The building blocks (:func:`bond_directions`, :func:`compatibility_matrix`, :func:`affine_extensions`,
:func:`relaxed_extensions`, :func:`probe_stiffness` and the Poisson ratio definitions) work on numpy arrays and
torch tensors alike; only the solve of the Hessian differs between their users: a sparse LU
(:func:`linear_response`, any N), a generalised inverse updated by rank-one steps, dense or kept as a sparse
factorisation plus rank-one terms on large networks (:class:`BondRemoval`, pruning), and a dense torch solve or a
sparse LU with an adjoint backward pass that autograd runs through (:func:`densim.tuning.torch_poisson_ratio`, node
optimisation).

References
----------
Goodrich, Liu and Nagel, Phys. Rev. Lett. 114, 225501 (2015).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from densim.springs import SpringNetwork

PROBES = ("xx", "yy", "xy")
#: Unit probe strains ``eps_p`` in the order of :data:`PROBES`, shape (3, 2, 2).
PROBE_STRAINS = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.5], [0.5, 0.0]]])


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

    @classmethod
    def from_probes(cls, m: np.ndarray) -> Moduli:
        """Moduli from the probe stiffness matrix ``m`` (3, 3) (:func:`probe_stiffness`)."""
        bulk, shear = bulk_shear_from_probes(m)
        return cls(float(bulk), float(shear), m)

    @property
    def poisson(self) -> float:
        """Isotropic 2D Poisson ratio ``(B - G) / (B + G)``."""
        return float(isotropic_poisson_ratio(self.stiffness_matrix))

    def poisson_ratio(self, definition: str) -> float:
        """Poisson ratio by one of :data:`POISSON_DEFINITIONS`."""
        return float(POISSON_DEFINITIONS[definition](self.stiffness_matrix))


def isotropic_poisson_ratio(m):
    """``(B - G) / (B + G)`` of probe stiffness matrices ``m`` (..., 3, 3): the orientation average.

    This and the other Poisson ratio definitions work on numpy arrays and torch tensors alike.
    """
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


def bulk_shear_from_probes(m):
    """Bulk and shear moduli from probe stiffness matrices (numpy arrays or torch tensors).

    Parameters
    ----------
    m : array, shape (..., 3, 3)
        ``M_pq`` over the probes ``xx, yy, xy``: ``C_xxxx = M_00``, ``C_yyyy = M_11``, ``C_xxyy = M_01``,
        ``C_xyxy = M_22``.
    """
    c11, c22, c12, c66 = m[..., 0, 0], m[..., 1, 1], m[..., 0, 1], m[..., 2, 2]
    return (c11 + c22 + 2 * c12) / 4, (4 * c66 + c11 + c22 - 2 * c12) / 8


def _namespace(x):
    """torch for a tensor, numpy otherwise: the building blocks below serve both.

    Only an imported torch can have made a tensor, so numpy-only users (the trajectories stage) never pay
    for importing it.
    """
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else np


def bond_directions(vectors):
    """Lengths and unit vectors of bond vectors.

    Parameters
    ----------
    vectors : array, shape (Nb, 2)
        Bond vectors ``r_b = x_j - x_i`` (minimum image).

    Returns
    -------
    length : array, shape (Nb,)
    unit : array, shape (Nb, 2)
        ``n_b = r_b / |r_b|``.
    """
    length = _namespace(vectors).linalg.norm(vectors, axis=1)
    return length, vectors / length[:, None]


def bond_dofs(bonds):
    """Degrees of freedom ``[2i, 2i + 1, 2j, 2j + 1]`` of the end nodes of each bond, shape (Nb, 4)."""
    i, j = bonds[:, 0], bonds[:, 1]
    return _namespace(bonds).stack([2 * i, 2 * i + 1, 2 * j, 2 * j + 1], axis=1)


def compatibility_rows(unit):
    """Nonzero entries ``[-n_b, +n_b]`` of each row of the compatibility matrix, at :func:`bond_dofs`.

    Parameters
    ----------
    unit : array, shape (Nb, 2)
        Unit bond vectors (:func:`bond_directions`).

    Returns
    -------
    array, shape (Nb, 4)
    """
    return _namespace(unit).concatenate([-unit, unit], axis=1)


def compatibility_matrix(unit, bonds, num_nodes: int):
    """Linear map ``A`` from node displacements to bond extensions, ``e = A u``.

    Row ``b`` holds ``-n_b`` at node ``i`` and ``+n_b`` at node ``j`` (``n_b`` the unit bond vector), with
    ``u`` flattened as ``[u_0x, u_0y, u_1x, ...]``.

    Parameters
    ----------
    unit : ndarray or Tensor, shape (Nb, 2)
        Unit bond vectors (:func:`bond_directions`).
    bonds : int array, shape (Nb, 2)
    num_nodes : int

    Returns
    -------
    scipy.sparse.csr_matrix or Tensor, shape (Nb, 2N)
        Sparse for numpy input; dense for torch, whose gradients must reach the positions through a dense
        solve (torch's sparse tensors do not support it).
    """
    shape = (bonds.shape[0], 2 * num_nodes)
    xp = _namespace(unit)
    if xp is not np:
        a = unit.new_zeros(shape)
        a[xp.arange(shape[0])[:, None], bond_dofs(bonds)] = compatibility_rows(unit)
        return a
    rows = np.repeat(np.arange(shape[0]), 4)
    return sp.csr_matrix((compatibility_rows(unit).ravel(), (rows, bond_dofs(bonds).ravel())), shape=shape)


def affine_extensions(unit, vectors):
    """Bond extensions ``n_b . eps_p . r_b`` under each unit probe strain (:data:`PROBE_STRAINS`).

    Parameters
    ----------
    unit : ndarray or Tensor, shape (Nb, 2)
        Unit bond vectors ``n_b`` (:func:`bond_directions`).
    vectors : ndarray or Tensor, shape (Nb, 2)
        Bond vectors ``r_b`` (minimum image).

    Returns
    -------
    array, shape (Nb, 3)
    """
    xp = _namespace(vectors)
    return xp.einsum("bi,pij,bj->bp", unit, xp.asarray(PROBE_STRAINS, dtype=vectors.dtype), vectors)


def hessian(network: SpringNetwork, compatibility: sp.csr_matrix | None = None) -> sp.csc_matrix:
    """Stiffness (dynamical) matrix ``A^T K A`` of the stress-free network, shape (2N, 2N)."""
    if compatibility is None:
        _, unit = bond_directions(network.bond_vectors())
        compatibility = compatibility_matrix(unit, network.bonds, network.num_nodes)
    return (compatibility.T @ sp.diags(network.stiffness) @ compatibility).tocsc()


def pinned(solve_reduced):
    """Lift a solver of the Hessian with node 0's rows and columns removed to all ``2N`` degrees of freedom.

    Holding node 0 in place removes the two rigid translations that make ``H`` singular; the extensions
    it is used for do not depend on a translation.

    Parameters
    ----------
    solve_reduced : callable
        Maps right-hand sides (2N - 2, 3) to the solution of the reduced system.

    Returns
    -------
    callable
        Maps forces (2N, 3) to displacements (2N, 3) whose first two rows are zero.
    """

    def solve(force):
        xp = _namespace(force)
        return xp.concatenate([xp.zeros_like(force[:2]), solve_reduced(force[2:])])

    return solve


def relaxed_extensions(compatibility, affine, stiffness, solve):
    """Bond extensions ``e = a + A u`` after the nodes relax, ``H u = -f`` with ``f = A^T K a``.

    Parameters
    ----------
    compatibility : scipy sparse matrix, ndarray or Tensor, shape (Nb, 2N)
    affine : array, shape (Nb, 3)
        Affine extensions under the probes (:func:`affine_extensions`).
    stiffness : array, shape (Nb,)
        Spring constants; zero for bonds taken out of the network (their extension is still returned).
    solve : callable
        Maps forces (2N, 3) to ``H^+ f``, with ``H`` the Hessian of ``stiffness``.

    Returns
    -------
    array, shape (Nb, 3)
    """
    force = compatibility.T @ (stiffness[:, None] * affine)
    return affine - compatibility @ solve(force)


def probe_stiffness(extensions, stiffness, area):
    """Probe stiffness matrix ``M_pq = e_p^T K e_q / V`` of relaxed extensions, shape (3, 3).

    Parameters
    ----------
    extensions : array, shape (Nb, 3)
    stiffness : array, shape (Nb,)
    area : float or scalar Tensor
    """
    return extensions.T @ (stiffness[:, None] * extensions) / area


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
    >>> from densim.springs import triangular_lattice
    >>> round(linear_response(triangular_lattice(6, 6)).poisson, 12)
    0.333333333333
    """
    vectors = network.bond_vectors()
    _, unit = bond_directions(vectors)
    a = compatibility_matrix(unit, network.bonds, network.num_nodes)
    lu = pinned_factorisation(hessian(network, a), check_rigidity)
    extensions = relaxed_extensions(a, affine_extensions(unit, vectors), network.stiffness, pinned(lu.solve))
    return Moduli.from_probes(probe_stiffness(extensions, network.stiffness, network.area))


def floppy_linear_response(network: SpringNetwork) -> tuple[Moduli, int]:
    """Elastic moduli of a network that may have floppy modes, and the number of its floppy modes.

    The relaxed extensions minimise ``|K^1/2 (a + A u)|^2`` over the displacements ``u``: a least-squares problem
    that has a minimum whether or not ``H = A^T K A`` is singular (the force ``f = A^T K a`` is orthogonal to every
    floppy mode ``A z = 0``, so the floppy modes take no energy and change no modulus). Dense, for networks of up to
    a few thousand nodes (an imported network that :func:`linear_response` finds not rigid); on a rigid network it
    agrees with :func:`linear_response` to rounding.

    Returns
    -------
    moduli : Moduli
    floppy_modes : int
        Zero modes of the Hessian beyond the two rigid translations.
    """
    vectors = network.bond_vectors()
    _, unit = bond_directions(vectors)
    root = np.sqrt(network.stiffness)[:, None]
    a = root * compatibility_matrix(unit, network.bonds, network.num_nodes).toarray()
    affine = affine_extensions(unit, vectors)
    solution, _, _, singular = np.linalg.lstsq(a, -root * affine, rcond=None)
    extensions = affine + (a @ solution) / root
    floppy = 2 * network.num_nodes - 2 - int(np.sum(singular > singular.max() * 1e-9))
    return Moduli.from_probes(probe_stiffness(extensions, network.stiffness, network.area)), floppy


def pinned_factorisation(h: sp.spmatrix, check_rigidity: bool = True):
    """Sparse LU of the Hessian ``h`` with node 0's rows and columns removed (:func:`pinned` lifts its solves).

    Raises
    ------
    NotRigidError
        When the reduced Hessian is singular, or (``check_rigidity``) nearly so: a floppy mode makes SuperLU
        return a round-off pivot rather than an error.
    """
    # from FACTORISED_FROM nodes a symmetric ordering (minimum degree on H + H^T, diagonal pivots): half the fill of
    # SuperLU's default COLAMD and twice as fast to factorise; smaller networks keep the default, so that their moduli
    # stay what they were to the last bit
    large = h.shape[0] >= 2 * FACTORISED_FROM
    options = {"permc_spec": "MMD_AT_PLUS_A", "diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}} if large else {}
    try:
        lu = spla.splu(h[2:, 2:].tocsc(), **options)
    except RuntimeError as err:  # SuperLU reports an exactly singular factor
        raise NotRigidError(f"the network is not rigid: {err}") from err
    if check_rigidity:
        pivots = np.abs(lu.U.diagonal())
        if not np.all(np.isfinite(pivots)) or pivots.min() < RIGIDITY_PIVOT_RATIO * pivots.max():
            raise NotRigidError(f"the network is not rigid (smallest/largest LU pivot {pivots.min() / pivots.max():.1e})")
    return lu


#: Networks with at least this many nodes hold ``H^+`` as a sparse factorisation rather than densely, in pruning
#: (:class:`BondRemoval`) and in NODE-OPT's differentiable route (:func:`densim.tuning.torch_poisson_ratio`).
#: Measured on 2 cores, one thread (``benchmarks/bench_networks.py --routes``), greedy pruning to nu = -0.5 takes
#: factorised/dense 1.13x the time at 128 nodes, 1.38x at 300, 0.46x at 500, 0.50x at 1,000 and 0.23x at 2,000.
#: NODE-OPT's factorised gradient is faster at every size (0.15x at 128 nodes, 0.01x at 1,000); it stays dense below
#: this size too so that the default and fidelity scales (128 and 200 nodes) make the same networks bit for bit.
FACTORISED_FROM = 400


class BondRemoval:
    """Exact moduli of a network as bonds are removed one by one, by rank-one updates.

    Removing bond ``r`` (compatibility row ``c_r``, stiffness ``k_r``) changes the generalised inverse ``H^+`` of the
    Hessian (node 0 pinned; its rows and columns are zero, which is exact for the translation-free vectors it is
    applied to) by Sherman-Morrison: ``H^+ += s x x^T`` with ``x = H^+ c_r``, ``s = k_r / (1 - k_r c_r^T x)``. The
    effect of removing any bond on the stiffness matrix then follows from its compliance ``g_b = c_b^T H^+ c_b``
    and the relaxed probe extensions, for all bonds at once (:meth:`removal_effects`). ``H^+`` is held one of two
    ways, by network size:

    - dense (below ``factorised_from`` nodes): every ``g_b`` is read off ``H^+``, and a removal updates it in
      ``O(N^2)``; ``H^+`` is recomputed from scratch every ``refresh_every`` removals to bound round-off;
    - factorised: a sparse LU of the Hessian plus the rank-one terms of the removals since it was made, which the
      next refresh folds into a new factorisation. The compliances are computed exactly once (a solve per bond)
      and then updated, ``g_b += s (c_b^T x)^2``, in ``O(N_b)`` per removal; the removed bond's own compliance,
      which sets the update, is always exact. Memory grows as the factor, not as ``N^2``.

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
        Removals between full recomputations of ``H^+`` (or refactorisations).
    refresh_below : float
        A removal whose denominator is below this amplifies round-off by its inverse, so ``H^+`` is
        recomputed right after it.
    factorised_from : int
        Networks with at least this many nodes hold ``H^+`` factorised.
    """

    def __init__(self, network: SpringNetwork, min_degree: int = 3, floppy_tolerance: float = 1e-6, refresh_every: int = 100, refresh_below: float = 1e-2,
                 factorised_from: int = FACTORISED_FROM):
        self.network = network
        self.min_degree = min_degree
        self.floppy_tolerance = floppy_tolerance
        self.refresh_every = refresh_every
        self.refresh_below = refresh_below
        self.factorised = network.num_nodes >= factorised_from
        self.active = np.ones(network.num_bonds, dtype=bool)
        self.removed: list[int] = []
        self.factorisations = 0
        self.solves = 0
        vectors = network.bond_vectors()
        _, unit = bond_directions(vectors)
        # the geometry never changes, only which bonds are active
        self._compatibility = compatibility_matrix(unit, network.bonds, network.num_nodes)
        self._affine = affine_extensions(unit, vectors)
        self._rows = compatibility_rows(unit)  # c_b on its degrees of freedom, (Nb, 4)
        self._dofs = bond_dofs(network.bonds)  # (Nb, 4)
        self._compliance = None
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
        if self.factorised:
            self._lu = pinned_factorisation(hessian(net))
            self._terms: list[tuple[float, np.ndarray]] = []  # (s, x) of the removals since the factorisation
            self.factorisations += 1
            if self._compliance is None:
                self._compliance = self._exact_compliance()
        else:
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

    def _solve(self, force: np.ndarray) -> np.ndarray:
        """``H^+ f`` for forces (2N, m): already a pinned solve, ``H^+`` having zero rows and columns at node 0."""
        if not self.factorised:
            return self._hinv @ force
        x = pinned(self._lu.solve)(force)
        self.solves += force.shape[1]
        if self._terms:
            scale = np.array([s for s, _ in self._terms])
            vectors = np.stack([v for _, v in self._terms])  # (m, 2N)
            x += vectors.T @ (scale[:, None] * (vectors @ force))
        return x

    def _exact_compliance(self) -> np.ndarray:
        """``g_b = c_b^T H^+ c_b`` of every bond, solving for the bonds' rows in blocks of about 100 MB."""
        columns = self._compatibility.T.tocsc()  # (2N, Nb)
        g = np.empty(self.network.num_bonds)
        block = max(1, int(1.25e7 // columns.shape[0]))
        for first in range(0, len(g), block):
            rhs = columns[:, first:first + block].toarray()
            g[first:first + block] = np.einsum("ij,ij->j", rhs, self._solve(rhs))
        return g

    def _update_extensions(self) -> None:
        stiffness = np.where(self.active, self.network.stiffness, 0.0)
        self._extensions = relaxed_extensions(self._compatibility, self._affine, stiffness, self._solve)
        m = probe_stiffness(self._extensions[self.active], self.network.stiffness[self.active], self.network.area)
        self._moduli = Moduli.from_probes(m)

    def removal_effects(self) -> tuple[np.ndarray, np.ndarray]:
        """Probe stiffness matrix after removing each bond, and which removals are allowed.

        Returns
        -------
        stiffness : ndarray, shape (Nb, 3, 3)
            ``M`` of the network with that bond removed (NaN where not allowed).
        allowed : ndarray of bool, shape (Nb,)
            Active bonds whose removal keeps every node at ``min_degree`` and opens no floppy mode.
        """
        if self.factorised:
            g = self._compliance
        else:
            c = self._rows
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
        c = self._rows[bond]
        if self.factorised:
            row = np.zeros((self._compatibility.shape[1], 1))
            row[dofs, 0] = c
            hc = self._solve(row)[:, 0]
        else:
            hc = self._hinv[:, dofs] @ c  # H^+ c_b, shape (2N,)
        k = self.network.stiffness[bond]
        denominator = 1.0 - k * (c @ hc[dofs])
        if denominator <= self.floppy_tolerance:
            raise NotRigidError(f"removing bond {bond} would open a floppy mode")
        if self.factorised:
            self._terms.append((k / denominator, hc))
            self._compliance += (k / denominator) * (self._compatibility @ hc) ** 2
        else:
            self._hinv += (k / denominator) * np.outer(hc, hc)
        self.active[bond] = False
        self.removed.append(int(bond))
        self._since_refresh += 1
        if self._since_refresh >= self.refresh_every or denominator < self.refresh_below:
            self._refresh()
        else:
            self._update_extensions()
