"""Three ways of tuning the Poisson ratio of a spring network.

- :func:`prune_to_target` (BOND-PRU-OPT): greedy removal of the bond that moves nu closest to the target,
  each candidate evaluated exactly by a rank-one update (:class:`densim.elasticity.BondRemoval`).
- :func:`optimise_node_positions` (NODE-OPT): gradient descent on node positions through a differentiable
  linear response (torch), rest lengths following the nodes so the network stays stress free.
- :func:`noise_and_prune` (NOI-PRU): random node displacement then random bond removal, stopping when nu
  falls into a given interval.

References
----------
Reid et al., PNAS 115, E1384 (2018) (pruning); Shen et al. (2024) (node displacement);
Dold and van Egmond (2023) (random perturbation and pruning).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from densim.elasticity import (
    FACTORISED_FROM,
    POISSON_DEFINITIONS,
    BondRemoval,
    NotRigidError,
    affine_extensions,
    bond_directions,
    bond_dofs,
    compatibility_matrix,
    compatibility_rows,
    linear_response,
    pinned,
    pinned_factorisation,
    probe_stiffness,
    relaxed_extensions,
)
from densim.springs import SpringNetwork, periodic_images, spring_stiffness, stress_free_network

if TYPE_CHECKING:  # torch only for NODE-OPT's differentiable route: the other generators' jobs never load it
    import torch


@dataclass(frozen=True)
class TuningResult:
    """A tuned network and how it got there.

    ``steps`` counts removals (pruning) or gradient steps (node optimisation); ``factorisations`` and
    ``solves`` count the linear algebra used (right-hand sides solved against a Hessian factorisation);
    ``candidates`` counts the candidate removals evaluated (each would cost a factorisation and three solves
    if recomputed from scratch).
    """

    network: SpringNetwork
    poisson: float
    steps: int
    factorisations: int = 0
    solves: int = 0
    candidates: int = 0


def prune_to_target(
    network: SpringNetwork, target: float, tolerance: float, definition: str = "uniaxial_x", min_degree: int = 3, refresh_every: int = 100,
    factorised_from: int = FACTORISED_FROM,
) -> TuningResult:
    """Greedy pruning toward a target Poisson ratio (``definition`` from :data:`POISSON_DEFINITIONS`).

    Each step removes the allowed bond (both ends keep ``min_degree`` bonds, no floppy mode opens) whose
    removal brings nu closest to ``target``; it stops within ``tolerance`` or when no removal gets closer.
    ``factorised_from``: see :class:`densim.elasticity.BondRemoval`.
    """
    measure = POISSON_DEFINITIONS[definition]
    state = BondRemoval(network, min_degree=min_degree, refresh_every=refresh_every, factorised_from=factorised_from)
    nu = state.moduli.poisson_ratio(definition)
    candidates = 0
    while abs(nu - target) > tolerance:
        stiffness, allowed = state.removal_effects()
        candidates += int(allowed.sum())
        if not allowed.any():
            break
        miss = np.abs(measure(stiffness) - target)
        best = int(np.nanargmin(miss))
        if miss[best] >= abs(nu - target):
            break
        state.remove(best)
        nu = state.moduli.poisson_ratio(definition)
    return TuningResult(state.current, nu, len(state.removed), state.factorisations, state.solves, candidates)


_MAX_REDRAWS = 100


@dataclass(frozen=True)
class MissedPath:
    """A NOI-PRU random path that ended without landing in its interval: the range of nu it went through (NaN when it
    never started) and why it ended."""

    nu_min: float
    nu_max: float
    reason: str


def noise_and_prune(
    network: SpringNetwork,
    interval: tuple[float, float],
    rng: np.random.Generator,
    noise: float,
    stiffness_mode: str,
    definition: str = "uniaxial_x",
    min_coordination: float = 4.1,
    min_length_ratio: float = 0.5,
    min_degree: int = 3,
) -> TuningResult | None:
    """Displace nodes at random, then remove random bonds until nu falls in ``interval``.

    Node displacements are Gaussian with standard deviation ``noise`` (in particle diameters); rest lengths
    are reset so the displaced network is stress free. Bonds are removed in random order among those whose
    removal keeps the network rigid and every node at ``min_degree`` bonds, while the mean coordination stays
    at or above ``min_coordination`` (near the isostatic Z = 4 the response to finite strain is strongly
    nonlinear, so such networks make poor compression data). The displacements of the ends of a bond that
    would shrink below ``min_length_ratio`` of its length are drawn again: with stiffness 1/l0 such a bond
    would be too stiff for the MD timestep of the compression.

    Returns
    -------
    TuningResult or MissedPath
        A :class:`MissedPath` when the path ends (no removable bond, the coordination floor) without entering
        ``interval``, with the range of nu it went through.
    """
    displacement = noise * rng.standard_normal(network.positions.shape)
    for _ in range(_MAX_REDRAWS):
        displaced = stress_free_network(network.positions + displacement, network.box, network.bonds, stiffness_mode)
        short = displaced.rest_lengths < min_length_ratio * network.rest_lengths
        if not short.any():
            break
        # redraw the displacements of the nodes of too-short bonds only
        nodes = np.unique(network.bonds[short])
        displacement[nodes] = noise * rng.standard_normal((len(nodes), 2))
    else:
        return MissedPath(np.nan, np.nan, f"no displacement kept every bond above {min_length_ratio} of its length")
    try:
        state = BondRemoval(displaced, min_degree=min_degree)
    except NotRigidError:
        return MissedPath(np.nan, np.nan, "the displaced network is not rigid")
    low, high = interval
    min_bonds = min_coordination * network.num_nodes / 2
    nu = state.moduli.poisson_ratio(definition)
    visited = [nu, nu]
    while not low <= nu <= high:
        _, allowed = state.removal_effects()
        if not allowed.any() or state.active.sum() - 1 < min_bonds:
            reason = "no removable bond left" if not allowed.any() else f"the coordination floor Z = {min_coordination}"
            return MissedPath(*visited, f"{reason} after {len(state.removed)} removals")
        state.remove(int(rng.choice(np.flatnonzero(allowed))))
        nu = state.moduli.poisson_ratio(definition)
        visited = [min(visited[0], nu), max(visited[1], nu)]
    # confirm the landing with a fresh solve (rank-one updates accumulate round-off)
    nu = linear_response(state.current).poisson_ratio(definition)
    if not low <= nu <= high:
        return MissedPath(*visited, f"a fresh solve put nu = {nu:.4f} outside after round-off")
    return TuningResult(state.current, nu, len(state.removed), state.factorisations, state.solves + 3)


def _bond_vectors(positions: torch.Tensor, bonds: torch.Tensor, images: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Bond vectors ``x_j - x_i - n_b * box`` with the image offsets ``n_b`` held fixed, shape (Nb, 2).

    Fixed offsets keep the vectors smooth functions of the positions, which the minimum image is not.
    """
    return positions[bonds[:, 1]] - positions[bonds[:, 0]] - images * box


def torch_poisson_ratio(
    positions: torch.Tensor, box: torch.Tensor, bonds: torch.Tensor, images: torch.Tensor, stiffness_mode: str, definition: str = "uniaxial_x",
    factorised: bool | None = None,
) -> torch.Tensor:
    """Differentiable Poisson ratio of the stress-free network on ``positions``.

    The linear response of :mod:`densim.elasticity` on torch tensors: the same compatibility matrix, affine
    extensions and relaxation, solved one of two ways that autograd runs through:

    - dense: a dense compatibility matrix and a dense solve of the pinned Hessian, ``O(N^3)`` per call, the
      fastest for a few hundred nodes;
    - factorised: the Hessian's entries assembled bond by bond and solved by a sparse LU (:func:`_pinned_solve`,
      whose backward pass solves the adjoint with the same factorisation), for large networks.

    Parameters
    ----------
    positions : Tensor, shape (N, 2)
    box : Tensor, shape (2,)
    bonds : LongTensor, shape (Nb, 2)
    images : Tensor, shape (Nb, 2)
        Periodic image offsets of the bonds (:func:`densim.springs.periodic_images` of the starting bond
        vectors), held fixed during optimisation.
    stiffness_mode : str
        How spring constants follow the rest lengths, which follow the nodes (:func:`densim.springs.spring_stiffness`).
    definition : str
        One of :data:`densim.elasticity.POISSON_DEFINITIONS`.
    factorised : bool, optional
        The solve; by default factorised from :data:`densim.elasticity.FACTORISED_FROM` nodes.

    Returns
    -------
    Tensor, shape ()
    """
    import torch

    vectors = _bond_vectors(positions, bonds, images, box)
    length, unit = bond_directions(vectors)
    stiffness = spring_stiffness(length, stiffness_mode)
    affine = affine_extensions(unit, vectors)
    if factorised is None:
        factorised = positions.shape[0] >= FACTORISED_FROM
    if factorised:
        dofs, rows = bond_dofs(bonds), compatibility_rows(unit)  # (Nb, 4) each
        force = positions.new_zeros(2 * positions.shape[0], 3).index_add_(
            0, dofs.reshape(-1), (rows[:, :, None] * (stiffness[:, None] * affine)[:, None, :]).reshape(-1, 3))
        entries = (stiffness[:, None, None] * rows[:, :, None] * rows[:, None, :]).reshape(-1)
        displacement = _pinned_solve().apply(entries, dofs[:, :, None].expand(-1, 4, 4).reshape(-1), dofs[:, None, :].expand(-1, 4, 4).reshape(-1), force)
        extensions = affine - (rows[:, :, None] * displacement[dofs]).sum(1)
    else:
        a = compatibility_matrix(unit, bonds, positions.shape[0])
        hessian = a.T @ (stiffness[:, None] * a)
        extensions = relaxed_extensions(a, affine, stiffness, pinned(partial(torch.linalg.solve, hessian[2:, 2:])))
    return POISSON_DEFINITIONS[definition](probe_stiffness(extensions, stiffness, box[0] * box[1]))


@cache
def _pinned_solve():
    """The autograd function of the factorised solve, defined on first use: importing this module does not import torch."""
    import torch

    class PinnedSolve(torch.autograd.Function):
        """``u = H^+ f`` for the Hessian given by COO entries (duplicates summed) with node 0 pinned.

        Forward: a sparse LU of the pinned Hessian (:func:`densim.elasticity.pinned_factorisation`). Backward: with
        ``H`` symmetric, ``lambda = H^+ du`` by the same factorisation gives ``df = lambda`` and, for each entry
        ``(i, j)``, ``dH_ij = -lambda_i . u_j``.
        """

        @staticmethod
        def forward(ctx, entries, rows, cols, force):
            n = force.shape[0]
            h = sp.csc_matrix((entries.detach().numpy(), (rows.numpy(), cols.numpy())), shape=(n, n))
            solve = pinned(pinned_factorisation(h, check_rigidity=False).solve)
            u = torch.from_numpy(solve(force.detach().numpy()))
            ctx.solve, ctx.rows, ctx.cols = solve, rows, cols
            ctx.save_for_backward(u)
            return u

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            adjoint = torch.from_numpy(ctx.solve(grad.detach().numpy()))
            return -(adjoint[ctx.rows] * u[ctx.cols]).sum(-1), None, None, adjoint

    return PinnedSolve


def _bond_pairs_at_nodes(bonds: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of bonds sharing a node: (node, bond a, bond b)."""
    node, first, second = [], [], []
    incident = [[] for _ in range(num_nodes)]
    for b, (i, j) in enumerate(bonds):
        incident[i].append(b)
        incident[j].append(b)
    for v, bs in enumerate(incident):
        for x in range(len(bs)):
            for y in range(x + 1, len(bs)):
                node.append(v)
                first.append(bs[x])
                second.append(bs[y])
    return np.array(node, dtype=np.int64), np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)


def optimise_node_positions(
    network: SpringNetwork,
    target: float,
    tolerance: float,
    stiffness_mode: str,
    definition: str = "uniaxial_x",
    learning_rate: float = 2e-3,
    max_steps: int = 3000,
    min_length_ratio: float = 0.5,
    min_angle_degrees: float = 20.0,
) -> TuningResult:
    """Move nodes by gradient descent (Adam) until the stress-free network reaches a target nu.

    The loss is ``(nu - target)^2`` plus penalties on bonds shorter than ``min_length_ratio`` times their
    initial length and on angles between bonds at a node below ``min_angle_degrees``; the box is fixed.
    The returned network is stress free at the optimised positions.
    """
    import torch

    bonds = torch.as_tensor(network.bonds)
    box = torch.as_tensor(network.box)
    start = torch.as_tensor(network.positions)
    images = periodic_images(start[bonds[:, 1]] - start[bonds[:, 0]], box)
    initial_length = _bond_vectors(start, bonds, images, box).norm(dim=1)
    node, first, second = (torch.as_tensor(x) for x in _bond_pairs_at_nodes(network.bonds, network.num_nodes))
    cos_max = float(np.cos(np.radians(min_angle_degrees)))

    def guards(positions):
        r = _bond_vectors(positions, bonds, images, box)
        length = r.norm(dim=1)
        short = torch.relu(min_length_ratio * initial_length - length)
        # orient both bonds of a pair away from their shared node before measuring the angle
        sign_a = torch.where(bonds[first, 0] == node, 1.0, -1.0).to(r.dtype)[:, None]
        sign_b = torch.where(bonds[second, 0] == node, 1.0, -1.0).to(r.dtype)[:, None]
        cos = ((sign_a * r[first]) * (sign_b * r[second])).sum(1) / (length[first] * length[second])
        return (short**2).sum(), (torch.relu(cos - cos_max) ** 2).sum()

    displacement = torch.zeros_like(start, requires_grad=True)
    optimiser = torch.optim.Adam([displacement], lr=learning_rate)
    step = 0
    for step in range(max_steps + 1):
        positions = start + displacement
        nu = torch_poisson_ratio(positions, box, bonds, images, stiffness_mode, definition)
        short, narrow = guards(positions)
        if abs(nu.item() - target) <= tolerance and short.item() == 0.0 and narrow.item() == 0.0:
            break
        if step == max_steps:
            break
        loss = (nu - target) ** 2 + 10.0 * short + 10.0 * narrow
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    positions = (start + displacement).detach().numpy()
    tuned = stress_free_network(positions, network.box, network.bonds, stiffness_mode)
    return TuningResult(tuned, nu.item(), step, factorisations=step + 1, solves=3 * (step + 1))

