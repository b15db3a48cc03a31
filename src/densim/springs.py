"""Periodic spring networks: the data structure and its geometry.

A network lives in a periodic rectangular box ``[0, Lx) x [0, Ly)`` with lengths in units of the
small particle diameter. Bond ``b`` joins nodes ``bonds[b] = (i, j)`` with energy
``(k_b / 2) (r_b - l0_b)^2`` where ``r_b`` is the minimum-image distance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

STIFFNESS_MODES = ("inverse_length", "inverse_square_length", "unit")


@dataclass(frozen=True)
class SpringNetwork:
    """A periodic network of harmonic springs.

    Parameters
    ----------
    positions : ndarray, shape (N, 2)
        Node positions (float64), wrapped into the box.
    box : ndarray, shape (2,)
        Box lengths ``(Lx, Ly)``; the origin is at 0.
    bonds : ndarray, shape (Nb, 2)
        Node indices of each bond, ``i < j``.
    rest_lengths : ndarray, shape (Nb,)
        Rest length ``l0`` of each bond.
    stiffness : ndarray, shape (Nb,)
        Spring constant ``k`` of each bond (energy ``k/2 (r - l0)^2``).
    """

    positions: np.ndarray
    box: np.ndarray
    bonds: np.ndarray
    rest_lengths: np.ndarray
    stiffness: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_bonds(self) -> int:
        return int(self.bonds.shape[0])

    @property
    def area(self) -> float:
        return float(self.box[0] * self.box[1])

    def degrees(self) -> np.ndarray:
        """Number of bonds at each node, shape (N,)."""
        return np.bincount(self.bonds.ravel(), minlength=self.num_nodes)

    def mean_coordination(self) -> float:
        """Mean coordination ``Z = 2 Nb / N`` (isostatic in 2D at Z = 4)."""
        return 2.0 * self.num_bonds / self.num_nodes

    def bond_vectors(self) -> np.ndarray:
        """Minimum-image vectors ``x_j - x_i`` of every bond, shape (Nb, 2)."""
        return minimum_image(self.positions[self.bonds[:, 1]] - self.positions[self.bonds[:, 0]], self.box)

    def bond_lengths(self) -> np.ndarray:
        """Current minimum-image bond lengths, shape (Nb,)."""
        return np.linalg.norm(self.bond_vectors(), axis=1)

    def without_bonds(self, keep: np.ndarray) -> SpringNetwork:
        """The same network keeping only the bonds where the boolean mask ``keep`` is true."""
        return replace(self, bonds=self.bonds[keep], rest_lengths=self.rest_lengths[keep], stiffness=self.stiffness[keep])


def periodic_images(delta, box):
    """Periodic image offsets: the whole numbers of box lengths ``n`` with ``delta - n * box`` shortest.

    This is the one sign convention of image offsets in the package: a vector is brought to its minimum
    image by *subtracting* ``n * box`` (:func:`minimum_image`). Ties (exactly half a box) round to even,
    identically in numpy and torch. Works on numpy arrays and torch tensors alike.

    Parameters
    ----------
    delta : array, shape (..., d)
        Separation vectors.
    box : array, shape (d,), or float
        Box lengths, broadcast against ``delta``: an array of the same kind (numpy or torch), or a float for
        a square box or fractional coordinates.

    Returns
    -------
    array, shape (..., d)
        Integer-valued floats of the type of ``delta``.
    """
    return (delta / box).round()


def minimum_image(delta, box):
    """Map separation vectors to their shortest periodic image, ``delta - box * periodic_images(delta, box)``.

    Works on numpy arrays and torch tensors alike (torch keeps gradients).

    Parameters
    ----------
    delta : array, shape (..., d)
    box : array, shape (d,), or float
        Box lengths, broadcast against ``delta``.

    Returns
    -------
    array, shape (..., d)

    Examples
    --------
    >>> minimum_image(np.array([[0.9, -2.6]]), 1.0).round(12).tolist()
    [[-0.1, 0.4]]
    """
    return delta - box * periodic_images(delta, box)


def spring_stiffness(rest_lengths, mode: str):
    """Spring constants from rest lengths: ``1/l0`` (``inverse_length``), ``2/l0^2`` (``inverse_square_length``: the
    study group's published data files, ``bond_style harmonic`` with ``K = 1/l0^2`` in ``E = K (r - l0)^2``) or 1
    (``unit``).

    Works on numpy arrays and torch tensors alike (node optimisation differentiates through it).
    """
    if mode == "inverse_length":
        return 1.0 / rest_lengths
    if mode == "inverse_square_length":
        return 2.0 / rest_lengths**2
    if mode == "unit":
        return rest_lengths**0  # ones of the input's kind and dtype, numpy or torch
    raise ValueError(f"stiffness mode must be one of {STIFFNESS_MODES}, got {mode!r}")


def stress_free_network(positions: np.ndarray, box: np.ndarray, bonds: np.ndarray, stiffness_mode: str) -> SpringNetwork:
    """A network whose rest lengths are the current bond lengths, so it starts without stress."""
    bonds = np.sort(np.asarray(bonds, dtype=np.int64), axis=1)
    bonds = bonds[np.lexsort((bonds[:, 1], bonds[:, 0]))]
    positions = np.mod(np.asarray(positions, dtype=np.float64), box)
    lengths = np.linalg.norm(minimum_image(positions[bonds[:, 1]] - positions[bonds[:, 0]], box), axis=1)
    return SpringNetwork(positions, np.asarray(box, dtype=np.float64), bonds, lengths, spring_stiffness(lengths, stiffness_mode))


def remove_rattlers(network: SpringNetwork, min_degree: int = 3) -> tuple[SpringNetwork, np.ndarray]:
    """Remove nodes with fewer than ``min_degree`` bonds, repeatedly, and renumber the rest.

    Removing a node removes its bonds, which can leave a neighbour under-coordinated, hence the loop.

    Returns
    -------
    network : SpringNetwork
    kept : ndarray of int
        Indices of the surviving nodes in the input network, in order.
    """
    alive = np.ones(network.num_nodes, dtype=bool)
    keep = np.ones(network.num_bonds, dtype=bool)
    while True:
        degree = np.bincount(network.bonds[keep].ravel(), minlength=network.num_nodes)
        rattlers = alive & (degree < min_degree)
        if not rattlers.any():
            break
        alive &= ~rattlers
        keep &= alive[network.bonds[:, 0]] & alive[network.bonds[:, 1]]
    new_index = np.cumsum(alive) - 1
    pruned = SpringNetwork(
        network.positions[alive],
        network.box,
        new_index[network.bonds[keep]],
        network.rest_lengths[keep],
        network.stiffness[keep],
    )
    return pruned, np.flatnonzero(alive)


def triangular_lattice(cells_x: int, cells_y: int, spacing: float = 1.0, stiffness_mode: str = "unit") -> SpringNetwork:
    """A periodic triangular lattice of equal springs, ``cells_x`` by ``cells_y`` (``cells_y`` even).

    Its exact elastic constants are ``B = sqrt(3) k / 2`` and ``G = sqrt(3) k / 4`` (so ``nu = 1/3``).
    """
    if cells_y % 2:
        raise ValueError("cells_y must be even for a periodic triangular lattice")
    row_height = spacing * np.sqrt(3.0) / 2.0
    ix, iy = np.meshgrid(np.arange(cells_x), np.arange(cells_y), indexing="xy")
    positions = np.stack([spacing * (ix + 0.5 * (iy % 2)), row_height * iy], axis=-1).reshape(-1, 2)
    box = np.array([cells_x * spacing, cells_y * row_height])
    node = lambda x, y: (y % cells_y) * cells_x + (x % cells_x)  # noqa: E731
    bonds = []
    for y in range(cells_y):
        for x in range(cells_x):
            shift = y % 2  # odd rows sit half a spacing to the right
            bonds += [(node(x, y), node(x + 1, y)), (node(x, y), node(x + shift, y + 1)), (node(x, y), node(x + shift - 1, y + 1))]
    return stress_free_network(positions, box, np.array(bonds), stiffness_mode)
