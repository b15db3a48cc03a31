"""Jammed packings of bidisperse soft disks, minimised with FIRE, and their contact networks.

Pair energy ``U = (eps / 2) (1 - r / sigma_ij)^2`` for ``r < sigma_ij = (sigma_i + sigma_j) / 2`` (``eps = 1``),
a 50:50 mixture of diameters 1 and ``diameter_ratio`` in a periodic square box. Above the jamming packing
fraction (about 0.84 for ratio 1.4) the minimised packing has a rigid contact network.

References
----------
Bitzek et al., Phys. Rev. Lett. 97, 170201 (2006) (FIRE).
O'Hern et al., Phys. Rev. E 68, 011306 (2003) (jamming of soft disks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from densim.springs import SpringNetwork, minimum_image, remove_rattlers, stress_free_network


@dataclass(frozen=True)
class Packing:
    """A minimised packing: positions (N, 2) in the box, diameters (N,), box (2,), max residual force."""

    positions: np.ndarray
    diameters: np.ndarray
    box: np.ndarray
    max_force: float
    steps: int


class _PairList:
    """Verlet list of candidate pairs, rebuilt when some particle moved more than half the skin."""

    def __init__(self, box: np.ndarray, cutoff: float, skin: float):
        self.box, self.cutoff, self.skin = box, cutoff, skin
        self.reference = None

    def pairs(self, positions: np.ndarray) -> np.ndarray:
        if self.reference is None or np.max(np.linalg.norm(minimum_image(positions - self.reference, self.box), axis=1)) > self.skin / 2:
            wrapped = np.mod(positions, self.box)
            # cKDTree needs coordinates strictly below boxsize; mod can round up to it.
            wrapped[wrapped >= self.box] = 0.0
            tree = cKDTree(wrapped, boxsize=self.box)
            self._pairs = tree.query_pairs(self.cutoff + self.skin, output_type="ndarray")
            self.reference = positions.copy()
        return self._pairs


def soft_disk_forces(positions: np.ndarray, diameters: np.ndarray, box: np.ndarray, pairs: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy and forces of harmonic soft disks over candidate pairs.

    Parameters
    ----------
    positions : ndarray, shape (N, 2)
    diameters : ndarray, shape (N,)
    box : ndarray, shape (2,)
    pairs : ndarray, shape (P, 2)
        Candidate pairs (a superset of the overlapping ones).

    Returns
    -------
    energy : float
    forces : ndarray, shape (N, 2)
    """
    i, j = pairs[:, 0], pairs[:, 1]
    delta = minimum_image(positions[j] - positions[i], box)
    r = np.linalg.norm(delta, axis=1)
    sigma = 0.5 * (diameters[i] + diameters[j])
    overlap = np.clip(1.0 - r / sigma, 0.0, None)
    energy = 0.5 * float(np.sum(overlap**2))
    # -dU/dr along the unit vector from i to j pushes j away from i
    magnitude = overlap / sigma
    f = (magnitude / np.where(r > 0, r, 1.0))[:, None] * delta
    # per-node sums in the order np.add.at would take (j's terms, then i's), so the result is the same to the bit,
    # at a fraction of its cost
    ends = np.concatenate([j, i])
    forces = np.stack([np.bincount(ends, weights=np.concatenate([f[:, d], -f[:, d]]), minlength=len(positions)) for d in (0, 1)], axis=1)
    return energy, forces


def fire_minimise(positions, diameters, box, force_tolerance=1e-12, max_steps=200_000, dt=0.1, dt_max=0.3):
    """Minimise the soft-disk energy with FIRE to a maximum force below ``force_tolerance``.

    Returns
    -------
    positions : ndarray, shape (N, 2)
    max_force : float
    steps : int
    """
    n_min, f_inc, f_dec, alpha_start, f_alpha = 5, 1.1, 0.5, 0.1, 0.99
    x = positions.copy()
    v = np.zeros_like(x)
    pair_list = _PairList(box, float(np.max(diameters)), skin=0.3)
    _, f = soft_disk_forces(x, diameters, box, pair_list.pairs(x))
    alpha, since_negative = alpha_start, 0
    for step in range(1, max_steps + 1):
        # velocity Verlet with unit masses
        v += 0.5 * dt * f
        x += dt * v
        _, f = soft_disk_forces(x, diameters, box, pair_list.pairs(x))
        v += 0.5 * dt * f
        max_force = float(np.max(np.abs(f)))
        if max_force < force_tolerance:
            return x, max_force, step
        power = float(np.sum(f * v))
        if power > 0:
            f_norm = np.linalg.norm(f)
            v = (1 - alpha) * v + alpha * np.linalg.norm(v) * f / (f_norm if f_norm > 0 else 1.0)
            since_negative += 1
            if since_negative > n_min:
                dt = min(dt * f_inc, dt_max)
                alpha *= f_alpha
        else:
            v[:] = 0.0
            dt *= f_dec
            alpha, since_negative = alpha_start, 0
    return x, max_force, max_steps


def jammed_packing(nodes: int, packing_fraction: float, diameter_ratio: float, rng: np.random.Generator, force_tolerance: float = 1e-12) -> Packing:
    """A minimised packing of ``nodes`` bidisperse disks at ``packing_fraction`` from random positions.

    Parameters
    ----------
    nodes : int
        Number of disks; half have diameter 1, half ``diameter_ratio``.
    packing_fraction : float
        Area fraction of the disks; the box side follows from it.
    rng : numpy.random.Generator
        Source of the initial positions (the only randomness).
    """
    diameters = np.where(np.arange(nodes) < nodes // 2, 1.0, diameter_ratio)
    side = np.sqrt(np.sum(np.pi * diameters**2 / 4) / packing_fraction)
    box = np.array([side, side])
    start = rng.uniform(0.0, side, size=(nodes, 2))
    positions, max_force, steps = fire_minimise(start, diameters, box, force_tolerance)
    return Packing(np.mod(positions, box), diameters, box, max_force, steps)


def contact_network(packing: Packing, stiffness_mode: str = "inverse_length", min_degree: int = 3) -> tuple[SpringNetwork, np.ndarray]:
    """Stress-free spring network of the overlapping pairs of a packing, rattlers removed.

    Every contact becomes a bond whose rest length is the contact distance; nodes with fewer than
    ``min_degree`` contacts are removed repeatedly.

    Returns
    -------
    network : SpringNetwork
    kept : ndarray of int
        Indices of the packing's disks that are nodes of the network.
    """
    pairs = _PairList(packing.box, float(np.max(packing.diameters)), skin=0.0).pairs(packing.positions)
    delta = minimum_image(packing.positions[pairs[:, 1]] - packing.positions[pairs[:, 0]], packing.box)
    sigma = 0.5 * (packing.diameters[pairs[:, 0]] + packing.diameters[pairs[:, 1]])
    # overlaps at round-off level are not contacts
    contacts = pairs[np.linalg.norm(delta, axis=1) < sigma * (1 - 1e-9)]
    return remove_rattlers(stress_free_network(packing.positions, packing.box, contacts, stiffness_mode), min_degree)
