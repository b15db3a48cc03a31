"""The learned simulator: preprocess -> network -> postprocess (after DeepMind's learning_to_simulate).

The network sees normalised features only. The simulator owns the features, their normalisation (statistics
from the train split, registered as buffers so a checkpoint is self-contained), the noise injection and the
semi-implicit Euler integrator with its exact inverse for targets:

.. math::

    v_t = x_t - x_{t-1}, \\qquad a_t = x_{t+1} - 2 x_t + x_{t-1}, \\qquad
    v_{t+1} = v_t + a_t, \\qquad x_{t+1} = x_t + v_{t+1}.

Node features are the ``history`` most recent velocities; with ``residual=True`` the affine velocity that the
imposed axial compression gives every node is subtracted first (it is most of the signal). Edge features are
the minimum-image bond vector (dx, dy), its length and ``1 / l0``. Positions stay float64 until the features
are formed, because per-frame displacements are about 1e-5 of the positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def velocities(positions: torch.Tensor) -> torch.Tensor:
    """Finite-difference velocities ``x_t - x_{t-1}``.

    Parameters
    ----------
    positions : Tensor, shape (N, T, 2)

    Returns
    -------
    Tensor, shape (N, T - 1, 2)
    """
    return positions[:, 1:] - positions[:, :-1]


def affine_velocity(positions: torch.Tensor, box_x: torch.Tensor, centre_x: float) -> torch.Tensor:
    """x velocity that the imposed compression gives each node between consecutive frames.

    LAMMPS' ``remap x`` maps ``x -> c + (x - c) L'/L`` about the box centre ``c``; frame ``t`` gets
    ``(x_{t-1} - c) (L_t / L_{t-1} - 1)``.

    Parameters
    ----------
    positions : Tensor, shape (N, T, 2)
    box_x : Tensor, shape (T,)
        Imposed box length along x per frame.
    centre_x : float

    Returns
    -------
    Tensor, shape (N, T - 1, 2) (y component zero)
    """
    ratio = box_x[1:] / box_x[:-1] - 1.0  # (T-1,)
    vx = (positions[:, :-1, 0] - centre_x) * ratio
    return torch.stack([vx, torch.zeros_like(vx)], dim=-1)


def edge_features(positions: torch.Tensor, edge_index: torch.Tensor, box: torch.Tensor, rest_length: torch.Tensor) -> torch.Tensor:
    """Minimum-image bond vector, its length and ``1/l0`` per directed edge.

    Parameters
    ----------
    positions : Tensor, shape (N, 2)
    edge_index : LongTensor, shape (2, E)
    box : Tensor, shape (2,)
        Box of this frame.
    rest_length : Tensor, shape (E,)

    Returns
    -------
    Tensor, shape (E, 4)
    """
    delta = positions[edge_index[1]] - positions[edge_index[0]]
    delta = delta - box * torch.round(delta / box)
    return torch.cat([delta, delta.norm(dim=1, keepdim=True), (1.0 / rest_length)[:, None]], dim=1)


@dataclass(frozen=True)
class Statistics:
    """Mean and standard deviation of velocities, accelerations and edge features (train split only)."""

    velocity_mean: torch.Tensor  # (2,)
    velocity_std: torch.Tensor
    acceleration_mean: torch.Tensor  # (2,)
    acceleration_std: torch.Tensor
    edge_mean: torch.Tensor  # (4,)
    edge_std: torch.Tensor


class LearnedSimulator(nn.Module):
    """Features, normalisation, noise and integrator around a learnable network.

    Parameters
    ----------
    network : nn.Module
        Maps a PyG graph with normalised ``x`` [N, 2 history] and ``edge_attr`` [E, 4] to normalised
        accelerations [N, 2].
    history : int
        Velocities per node feature.
    statistics : Statistics
        Registered as buffers.
    residual : bool
        Subtract the imposed affine velocity from inputs and targets.
    noise_std : float
        Standard deviation of the random-walk noise added to input positions in training.
    """

    def __init__(self, network: nn.Module, history: int, statistics: Statistics, residual: bool = True, noise_std: float = 0.0):
        super().__init__()
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.network = network
        self.history = history
        self.residual = residual
        self.noise_std = noise_std
        for name, value in vars(statistics).items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float64))

    def _velocity_inputs(self, positions, box_x, centre_x):
        v = velocities(positions)
        if self.residual:
            v = v - affine_velocity(positions, box_x, centre_x)
        return v

    def preprocess(self, graph, positions: torch.Tensor, box: torch.Tensor, box_x: torch.Tensor, centre_x: float):
        """Normalised node and edge features of the last frame of ``positions`` (N, history + 1, 2)."""
        v = self._velocity_inputs(positions, box_x, centre_x)
        x = ((v - self.velocity_mean) / self.velocity_std).reshape(v.shape[0], -1)
        edges = edge_features(positions[:, -1], graph.edge_index, box, graph.rest_length)
        graph = graph.clone()
        graph.x = x.to(torch.get_default_dtype())
        graph.edge_attr = ((edges - self.edge_mean) / self.edge_std).to(torch.get_default_dtype())
        return graph

    def postprocess(self, normalised_acceleration: torch.Tensor, positions: torch.Tensor, box_x_next: torch.Tensor, box_x: torch.Tensor, centre_x: float):
        """Next positions from a normalised acceleration by semi-implicit Euler, shape (N, 2).

        A network whose ``frozen`` attribute is true (the ``frozen`` baseline) leaves positions where they are.
        """
        if getattr(self.network, "frozen", False):
            return positions[:, -1].clone()
        acceleration = normalised_acceleration.to(torch.float64) * self.acceleration_std + self.acceleration_mean
        if self.residual:
            acceleration = acceleration + self._affine_acceleration(positions, box_x_next, box_x, centre_x)
        velocity = positions[:, -1] - positions[:, -2] + acceleration
        return positions[:, -1] + velocity

    def _affine_acceleration(self, positions, box_x_next, box_x, centre_x):
        """Change of the affine velocity from the last step to the next, shape (N, 2)."""
        window = torch.cat([positions[:, -2:], positions[:, -1:]], dim=1)  # x_{t+1} enters only through x_t
        frames_x = torch.cat([box_x[-2:], box_x_next.reshape(1)])
        affine = affine_velocity(window, frames_x, centre_x)
        return affine[:, 1] - affine[:, 0]

    def target(self, positions: torch.Tensor, box_x: torch.Tensor, centre_x: float) -> torch.Tensor:
        """Normalised acceleration target from ``history + 2`` frames (N, history + 2, 2); the exact inverse of
        :meth:`postprocess`."""
        acceleration = positions[:, -1] - 2 * positions[:, -2] + positions[:, -3]
        if self.residual:
            acceleration = acceleration - self._affine_acceleration(positions[:, :-1], box_x[-1], box_x[:-1], centre_x)
        return (acceleration - self.acceleration_mean) / self.acceleration_std

    def forward(self, graph, positions, box, box_x, centre_x):
        """Normalised acceleration predicted for the frame after the last of ``positions``."""
        return self.network(self.preprocess(graph, positions, box, box_x, centre_x))
