r"""Baselines that every learned simulator must beat.

- :class:`Frozen`: nothing moves. Its simulator (:class:`~densim.simulator.FrozenSimulator`) keeps every node
  at its last position (:math:`\mathbf{x}_{t+1} = \mathbf{x}_t`), so a rollout repeats its last input frame;
  errors of the other models are reported relative to this one, which therefore scores a relative MSE of
  exactly 1.
- :class:`ConstantVelocity`: every node keeps its last velocity (:math:`\mathbf{x}_{t+1} = 2\mathbf{x}_t -
  \mathbf{x}_{t-1}`, :class:`~densim.simulator.ConstantVelocitySimulator`): the extrapolation a simulator gets for
  free, exact for the affine part of a compression at a constant strain rate.
- :class:`LinearFloor`: the best linear predictor of a node's (normalised) acceleration from its own
  (normalised) velocity history, :math:`\mathbf{a}_i = W \mathbf{x}_i + \mathbf{b}`, shared by all nodes. It has
  a closed form, fitted by least squares on every training window (:meth:`LinearFloor.fit`) instead of by
  gradient descent.

- :class:`LinearDynamics`: the physics baseline, the damped linear dynamics of the network's own Hessian with the
  deck's mass, damping and imposed compression, advanced exactly between frames from the last input frames
  (:class:`~densim.simulator.LinearDynamicsSimulator`): what a simulator knows for free at small strain.
- :class:`ThermalTwin`: not a predictor but an oracle: the trajectory's own thermal twin, the same LAMMPS run continued
  from the rollout start with another thermostat seed (:class:`~densim.simulator.ThermalTwinSimulator`). Its error is
  the part of every rollout error that thermal noise makes unpredictable; it is reported beside the models in every
  table and figure and never counted as a winner (:data:`densim.models.ORACLES`).

None reads edges or spectra; none takes hyperparameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from densim.simulator import (AccelerationSimulator, ConstantVelocitySimulator, FrozenSimulator, LinearDynamicsSimulator,
                              ThermalTwinSimulator)


class _Baseline(nn.Module):
    """Common constructor: the widths of :func:`densim.models.build_model` and no hyperparameters."""

    def __init__(self, node_in: int, edge_in: int, out: int, **hyperparameters: Any) -> None:
        super().__init__()
        if hyperparameters:
            raise TypeError(f"{type(self).__name__} got unknown hyperparameter(s) {', '.join(sorted(hyperparameters))}; "
                            "it accepts none")
        self.node_in, self.edge_in, self.out = node_in, edge_in, out

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return {}

    @property
    def receptive_field(self) -> float:
        """Each node's prediction reads its own history only."""
        return 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(node_in={self.node_in}, edge_in={self.edge_in}, out={self.out})"


class _Uncalled(_Baseline):
    """A baseline whose simulator never calls its network: no parameters, and a zero output that only keeps the
    models' common shape contract."""

    def forward(self, graph: Any) -> Tensor:
        return graph.x.new_zeros(graph.x.shape[0], self.out)


class Frozen(_Uncalled):
    """Nothing moves: :class:`~densim.simulator.FrozenSimulator` holds positions."""

    simulator = FrozenSimulator


class ConstantVelocity(_Uncalled):
    """Every node keeps its last velocity: :class:`~densim.simulator.ConstantVelocitySimulator` extrapolates."""

    simulator = ConstantVelocitySimulator


class LinearDynamics(_Uncalled):
    """The damped linear dynamics of the network's Hessian: :class:`~densim.simulator.LinearDynamicsSimulator` advances
    them in closed form."""

    simulator = LinearDynamicsSimulator


class ThermalTwin(_Uncalled):
    """The thermal twin's frames: :class:`~densim.simulator.ThermalTwinSimulator` reads them from the trajectory."""

    simulator = ThermalTwinSimulator


class LinearFloor(_Baseline):
    """Least-squares linear map from a node's normalised velocity history to its normalised acceleration."""

    simulator = AccelerationSimulator
    #: Fitted by :meth:`fit` (least squares) instead of gradient descent.
    closed_form = True

    def __init__(self, node_in: int, edge_in: int, out: int, **hyperparameters: Any) -> None:
        super().__init__(node_in, edge_in, out, **hyperparameters)
        self.linear = nn.Linear(node_in, out)

    @torch.no_grad()
    def fit(self, features: Tensor, targets: Tensor) -> None:
        """Set the weights to the least-squares solution of ``targets ~ features W^T + b``.

        Parameters
        ----------
        features : Tensor, shape (M, node_in)
        targets : Tensor, shape (M, out)
        """
        design = torch.cat([features, torch.ones_like(features[:, :1])], dim=1).to(torch.float64)
        solution = torch.linalg.lstsq(design.cpu(), targets.to(torch.float64).cpu(), driver="gelsd").solution
        self.linear.weight.copy_(solution[:-1].T)
        self.linear.bias.copy_(solution[-1])

    def forward(self, graph: Any) -> Tensor:
        return self.linear(graph.x)
