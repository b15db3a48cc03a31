"""Simulator families: how a network's output becomes the next frame, and what the network is trained on.

A simulator owns everything around its learnable network (after DeepMind's learning_to_simulate): the
features, their normalisation (statistics from the train split, registered as buffers so a checkpoint is
self-contained), the noise injected into training inputs, the one-step update of the rollout state and the
training loss. Every family implements the same contract (:class:`Simulator`), so training, rollouts and
evaluation never ask which family they hold:

- :meth:`~Simulator.initial_state`: the rollout state from ground-truth frames (with noise in training), and
  :meth:`~Simulator.initial_states` of many at once;
- :meth:`~Simulator.step`: one step of many states at once, one batched network call;
- :meth:`~Simulator.positions`: the node positions of a state;
- :meth:`~Simulator.loss`: the training loss over windows of ``steps`` unrolled steps;
- :attr:`~Simulator.closed_form` and :meth:`~Simulator.fit`: baselines fitted without gradient descent.

:class:`AccelerationSimulator` predicts a normalised acceleration and integrates it by semi-implicit Euler,
with its exact inverse for targets:

.. math::

    v_t = x_t - x_{t-1}, \\qquad a_t = x_{t+1} - 2 x_t + x_{t-1}, \\qquad
    v_{t+1} = v_t + a_t, \\qquad x_{t+1} = x_t + v_{t+1}.

Node features are the ``history`` most recent velocities; with ``residual=True`` the affine velocity that the
imposed axial compression gives every node is subtracted first (it is most of the signal). Edge features are
the minimum-image bond vector (dx, dy), its length and ``1 / l0``. Positions stay float64 until the features
are formed, because per-frame displacements are about 1e-5 of the positions.

:class:`FrozenSimulator` is the ``frozen`` baseline: nothing moves.

:class:`LatentSimulator` carries a latent state through the whole rollout (the port-Hamiltonian IGNS of seed 000):
the first frames are encoded once and advanced by ``warmup`` latent steps without output; then every frame is one
latent step, decoded into a normalised acceleration that is integrated as above (the decode is an integrated
acceleration, not an offset, so the affine compression and the normalisation stay those of the acceleration
family). The state holds the decoded frames beside the latent ``(q, p)`` and the latent time ``t`` that indexes
time-varying weights.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from densim.springs import minimum_image
from densim.observables import affine_velocity, residual_velocities
from densim.rollout import TrajectoryGraph, estimated_boxes


def edge_features(positions: Tensor, edge_index: Tensor, box: Tensor, rest_length: Tensor) -> Tensor:
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
    delta = minimum_image(positions[edge_index[1]] - positions[edge_index[0]], box)
    return torch.cat([delta, delta.norm(dim=1, keepdim=True), (1.0 / rest_length)[:, None]], dim=1)


@dataclass(frozen=True)
class Statistics:
    """Mean and standard deviation of velocities, accelerations and edge features (train split only)."""

    velocity_mean: Tensor  # (2,)
    velocity_std: Tensor
    acceleration_mean: Tensor  # (2,)
    acceleration_std: Tensor
    edge_mean: Tensor  # (4,)
    edge_std: Tensor

    @classmethod
    def from_state_dict(cls, state: dict) -> Statistics:
        """The statistics a simulator registered as buffers, read back from its state dict."""
        return cls(*(state[field.name] for field in fields(cls)))


class Simulator(nn.Module):
    """The contract every simulator family implements (see the module docstring).

    Parameters
    ----------
    network : nn.Module
        The learnable network (its input widths come from :meth:`widths`).
    history : int
        Past velocities the network sees; a rollout starts from ``history + 1`` ground-truth frames.
    statistics : Statistics
        Normalisation statistics, registered as float64 buffers.
    residual : bool
        Subtract the imposed affine velocity from inputs and targets.
    noise : float
        Standard deviation of the random-walk noise on training inputs (on the last input frame), in units of the
        acceleration std of the statistics (per component), so that it scales with the data.
    """

    #: Fitted by :meth:`fit` in closed form rather than trained by gradient descent.
    closed_form: bool = False

    def __init__(self, network: nn.Module, history: int, statistics: Statistics, residual: bool = True, noise: float = 0.0):
        super().__init__()
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.network = network
        self.history = history
        self.residual = residual
        self.noise = noise
        for name, value in vars(statistics).items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float64))

    @staticmethod
    def widths(history: int) -> dict[str, int]:
        """Input and output widths of the network for ``history`` (``node_in``, ``edge_in``, ``out``)."""
        return {"node_in": 2 * history, "edge_in": 4, "out": 2}

    def initial_state(self, trajectory: TrajectoryGraph, last: int, generator: torch.Generator | None = None) -> Tensor:
        """The state of ground-truth frames ``last - history .. last``, shape (N, history + 1, 2).

        With a ``generator`` (training) and ``noise > 0``, random-walk noise is added to the frames (its std on the
        last frame is ``noise`` acceleration stds); the targets still lead to the true next frames.
        """
        state = trajectory.positions[:, last - self.history : last + 1]
        if generator is None or self.noise == 0:
            return state
        scale = self.noise * self.acceleration_std.cpu() / math.sqrt(self.history + 1)
        steps = scale * torch.randn(state.shape, generator=generator, dtype=state.dtype)
        return state + steps.to(state.device).cumsum(dim=1)

    def initial_states(self, trajectories: list[TrajectoryGraph], lasts: list[int], generator: torch.Generator | None = None) -> list:
        """:meth:`initial_state` of each trajectory (the latent family encodes them all in one batched call)."""
        return [self.initial_state(trajectory, last, generator) for trajectory, last in zip(trajectories, lasts)]

    def positions(self, state: Tensor) -> Tensor:
        """Node positions of a state, shape (N, 2)."""
        return state[:, -1]

    def step(self, trajectories: list[TrajectoryGraph], states: list, lasts: list[int]) -> tuple[list, list[Tensor]]:
        """Advance every state by one frame.

        Parameters
        ----------
        trajectories : list of TrajectoryGraph
            The trajectory (graph, imposed box) of each state.
        states : list
            States whose last frame is frame ``lasts[i]`` of ``trajectories[i]``.
        lasts : list of int

        Returns
        -------
        states : list
            The states one frame later.
        outputs : list of Tensor
            What the network predicted for each state (compared with :meth:`target` in the loss).
        """
        raise NotImplementedError

    def target(self, trajectory: TrajectoryGraph, state, last: int) -> Tensor:
        """What :meth:`step` should output for ``state`` to reach the true frame ``last + 1``."""
        raise NotImplementedError

    def loss(self, trajectories: list[TrajectoryGraph], windows: list[tuple[int, int]], steps: int = 1,
             generator: torch.Generator | None = None, pushforward: bool = False) -> Tensor:
        """Mean squared error of the outputs against the targets over ``steps`` unrolled steps.

        Each window ``(i, t)`` starts from the ground-truth frames ending at frame ``t`` of
        ``trajectories[i]`` (noisy with a ``generator``); each step's prediction feeds the next step, and the
        loss is the mean over the steps with gradients through all of them. With ``pushforward`` the first
        ``steps - 1`` steps run without gradients and only the last one is scored (Brandstetter et al. 2022).
        """
        chosen = [trajectories[i] for i, _ in windows]
        states = self.initial_states(chosen, [t for _, t in windows], generator)
        losses = []
        for offset in range(steps):
            scored = not pushforward or offset == steps - 1
            lasts = [t + offset for _, t in windows]
            with torch.set_grad_enabled(scored and torch.is_grad_enabled()):
                targets = torch.cat([self.target(tr, s, last) for tr, s, last in zip(chosen, states, lasts)])
                states, outputs = self.step(chosen, states, lasts)
            if scored:
                prediction = torch.cat(outputs)
                losses.append(torch.mean((prediction - targets.to(prediction.dtype)) ** 2))
        return torch.stack(losses).mean()

    def fit(self, trajectories: list[TrajectoryGraph], windows: list[tuple[int, int]]) -> None:
        """Fit in closed form on one-step windows (only when :attr:`closed_form`)."""
        raise NotImplementedError(f"{type(self).__name__} is trained by gradient descent, not fitted")


class AccelerationSimulator(Simulator):
    """A network predicting normalised accelerations, integrated by semi-implicit Euler.

    The network maps a PyG graph with normalised ``x`` [N, 2 history] and ``edge_attr`` [E, 4] to normalised
    accelerations [N, 2]. A network whose ``closed_form`` attribute is true (``linear_floor``) is fitted by
    its ``fit(features, targets)`` on the same features and targets.
    """

    @property
    def closed_form(self) -> bool:
        return self.network.closed_form

    def preprocess(self, graph, positions: Tensor, box: Tensor, box_x: Tensor, centre_x) -> Batch:
        """The graph with normalised node and edge features of the last frame of ``positions`` (N, history + 1, 2).

        ``box`` is the box of that frame, (2,) or per edge (E, 2); ``box_x`` the imposed x lengths of the frames,
        (history + 1,) or per node (N, history + 1); ``centre_x`` a float or per node (N, 1).
        """
        v = residual_velocities(positions, box_x, centre_x, self.residual)
        x = ((v - self.velocity_mean) / self.velocity_std).reshape(v.shape[0], -1)
        edges = edge_features(positions[:, -1], graph.edge_index, box, graph.rest_length)
        graph = copy.copy(graph)  # shares the static tensors (bonds, eigenvectors); only the features are new
        graph.x = x.to(torch.get_default_dtype())
        graph.edge_attr = ((edges - self.edge_mean) / self.edge_std).to(torch.get_default_dtype())
        return graph

    def postprocess(self, normalised_acceleration: Tensor, positions: Tensor, box_x_next: Tensor, box_x: Tensor, centre_x) -> Tensor:
        """Next positions from a normalised acceleration by semi-implicit Euler, shape (N, 2) (``box_x_next`` a scalar
        or per node (N,), the rest as in :meth:`preprocess`)."""
        acceleration = normalised_acceleration.to(torch.float64) * self.acceleration_std + self.acceleration_mean
        if self.residual:
            acceleration = acceleration + self._affine_acceleration(positions, box_x_next, box_x, centre_x)
        velocity = positions[:, -1] - positions[:, -2] + acceleration
        return positions[:, -1] + velocity

    def _affine_acceleration(self, positions, box_x_next, box_x, centre_x):
        """Change of the affine velocity from the last step to the next, shape (N, 2)."""
        window = torch.cat([positions[:, -2:], positions[:, -1:]], dim=1)  # x_{t+1} enters only through x_t
        frames_x = torch.cat([box_x[..., -2:], box_x_next[..., None]], dim=-1)
        affine = affine_velocity(window, frames_x, centre_x)
        return affine[:, 1] - affine[:, 0]

    def normalised_acceleration(self, positions: Tensor, box_x: Tensor, centre_x) -> Tensor:
        """Normalised acceleration of the last of ``history + 2`` frames (N, history + 2, 2); the exact inverse
        of :meth:`postprocess`."""
        acceleration = positions[:, -1] - 2 * positions[:, -2] + positions[:, -3]
        if self.residual:
            acceleration = acceleration - self._affine_acceleration(positions[:, :-1], box_x[..., -1], box_x[..., :-1], centre_x)
        return (acceleration - self.acceleration_mean) / self.acceleration_std

    def _batch(self, trajectories: list[TrajectoryGraph], states: Tensor, lasts: list[int]) -> Batch:
        """Every state's graph in one batch, with the normalised features of its last frame: all trajectories' features,
        boxes and minimum images at once (per node and per edge), not one trajectory at a time. ``states`` are stacked,
        (N, history + 1, 2)."""
        batch = Batch.from_data_list([trajectory.graph for trajectory in trajectories])
        windows = torch.stack([t.box[last - self.history : last + 1, 0] for t, last in zip(trajectories, lasts)])
        # the box as a rollout sees it: imposed along x, zero transverse stress of the positions along y
        boxes = estimated_boxes(trajectories, list(states[:, -1].split(batch.ptr.diff().tolist())), windows[:, -1])
        centres = windows.new_tensor([t.centre_x for t in trajectories])
        return self.preprocess(batch, states, boxes[batch.batch[batch.edge_index[0]]], windows[batch.batch], centres[batch.batch, None])

    def _integrate(self, trajectories: list[TrajectoryGraph], states: Tensor, prediction: Tensor, lasts: list[int], graph_of_node: Tensor) -> Tensor:
        """The states (stacked, (N, history + 1, 2)) one frame later: drop the oldest frame, append the one integrated
        from the normalised accelerations ``prediction`` (N, 2)."""
        box_x = torch.stack([t.box[last - self.history : last + 2, 0] for t, last in zip(trajectories, lasts)])[graph_of_node]
        centres = states.new_tensor([t.centre_x for t in trajectories])[graph_of_node, None]
        following = self.postprocess(prediction, states, box_x[:, -1], box_x[:, :-1], centres)
        return torch.cat([states[:, 1:], following[:, None]], dim=1)

    def step(self, trajectories, states, lasts):
        stacked = torch.cat(states)
        batch = self._batch(trajectories, stacked, lasts)
        prediction = self.network(batch)
        sizes = batch.ptr.diff().tolist()
        updated = self._integrate(trajectories, stacked, prediction, lasts, batch.batch)
        return list(updated.split(sizes)), list(prediction.split(sizes))

    def target(self, trajectory, state, last):
        frames = torch.cat([state, trajectory.positions[:, last + 1 : last + 2]], dim=1)
        return self.normalised_acceleration(frames, trajectory.box[last - self.history : last + 2, 0], trajectory.centre_x)

    @torch.no_grad()
    def fit(self, trajectories, windows):
        if not self.closed_form:
            super().fit(trajectories, windows)
        chosen = [trajectories[i] for i, _ in windows]
        states = self.initial_states(chosen, [t for _, t in windows])
        graphs = self._batch(chosen, torch.cat(states), [t for _, t in windows])
        targets = torch.cat([self.target(tr, s, t) for tr, s, (_, t) in zip(chosen, states, windows)])
        self.network.fit(graphs.x, targets)


class FrozenSimulator(Simulator):
    """Nothing moves: every step repeats the last frame, so relative errors against it are exactly 1.

    Its network (:class:`~densim.models.baselines.Frozen`) has no parameters and is never called.
    """

    closed_form = True

    def step(self, trajectories, states, lasts):
        held = [torch.cat([s[:, 1:], s[:, -1:]], dim=1) for s in states]
        return held, [torch.zeros_like(s[:, -1]) for s in states]

    def fit(self, trajectories, windows):
        """Nothing to fit."""


class ConstantVelocitySimulator(Simulator):
    """Every node keeps its last velocity: ``x[t+1] = 2 x[t] - x[t-1]`` (zero acceleration). Under a constant strain
    rate the affine part of the motion is exact; what any learned simulator adds must beat this extrapolation.

    Its network (:class:`~densim.models.baselines.ConstantVelocity`) has no parameters and is never called.
    """

    closed_form = True

    def step(self, trajectories, states, lasts):
        moved = [torch.cat([s[:, 1:], (2 * s[:, -1] - s[:, -2])[:, None]], dim=1) for s in states]
        return moved, [torch.zeros_like(s[:, -1]) for s in states]

    def fit(self, trajectories, windows):
        """Nothing to fit."""


class ThermalTwinSimulator(Simulator):
    """The trajectory's thermal twin (:func:`densim.trajectories.thermal_twin`): every step takes the twin's next frame,
    the same run continued from the rollout start with the thermostat reseeded. An oracle, not a simulator: its error
    is the thermal noise that no simulator can predict (half its MSE against the truth estimates the noise of one
    run). Trajectories without a twin (imported, or at temperature 0) give NaN frames: not measured.

    Its network (:class:`~densim.models.baselines.ThermalTwin`) has no parameters and is never called.
    """

    closed_form = True

    def step(self, trajectories, states, lasts):
        moved = []
        for trajectory, state, last in zip(trajectories, states, lasts):
            twin = trajectory.twin
            following = twin[:, last + 1] if twin is not None else torch.full_like(state[:, -1], float("nan"))
            moved.append(torch.cat([state[:, 1:], following[:, None].to(state)], dim=1))
        return moved, [torch.zeros_like(s[:, -1]) for s in states]

    def fit(self, trajectories, windows):
        """Nothing to fit."""


@dataclass
class LatentState:
    """A rollout state of :class:`LatentSimulator`: the decoded frames, shape (N, history + 1, 2) float64, the latent
    ``q`` and ``p``, shape (N, m) each, and the latent time of the next step."""

    frames: Tensor
    q: Tensor
    p: Tensor
    time: int


class LatentSimulator(AccelerationSimulator):
    """A latent state carried through the rollout: encode once, warm up once, one latent step per frame.

    The network provides ``encode(graph) -> (q, p)``, ``edges(graph)`` (the encoded edge features of a frame, or
    None), ``advance(q, p, edge_index, e, t)`` (one latent step at latent time ``t``), ``decode(q, p)`` (a normalised
    acceleration per node) and its ``warmup``. :meth:`initial_state` encodes the ``history + 1`` input frames (noisy
    in training) and runs the warmup, at latent times ``0 .. warmup - 1``; each :meth:`step` advances every state by
    one latent step, whose forcing sees the geometry of the state's last decoded frame, decodes the acceleration and
    integrates it into the next frame. The training loss (:meth:`Simulator.loss`) unrolls ``steps`` such steps from
    one encoding, with gradients through the whole window. Targets are those of the acceleration family.
    """

    def initial_states(self, trajectories, lasts, generator=None) -> list[LatentState]:
        frames = [super(LatentSimulator, self).initial_state(t, last, generator) for t, last in zip(trajectories, lasts)]
        graph = self._batch(trajectories, torch.cat(frames), lasts)
        q, p = self.network.encode(graph)
        edges = self.network.edges(graph)
        for t in range(self.network.warmup):
            q, p = self.network.advance(q, p, graph.edge_index, edges, t)
        sizes = graph.ptr.diff().tolist()
        return [LatentState(f, q_i, p_i, self.network.warmup) for f, q_i, p_i in zip(frames, q.split(sizes), p.split(sizes))]

    def initial_state(self, trajectory: TrajectoryGraph, last: int, generator: torch.Generator | None = None) -> LatentState:
        return self.initial_states([trajectory], [last], generator)[0]

    def positions(self, state: LatentState) -> Tensor:
        return state.frames[:, -1]

    def step(self, trajectories, states, lasts):
        times = {state.time for state in states}
        if len(times) != 1:
            raise ValueError(f"states at different latent times {sorted(times)} cannot step together")
        frames = torch.cat([s.frames for s in states])
        batch = self._batch(trajectories, frames, lasts)
        q, p = self.network.advance(torch.cat([s.q for s in states]), torch.cat([s.p for s in states]), batch.edge_index,
                                    self.network.edges(batch), times.pop())
        prediction = self.network.decode(q, p)
        sizes = batch.ptr.diff().tolist()
        updated = self._integrate(trajectories, frames, prediction, lasts, batch.batch)
        return ([LatentState(f, q_i, p_i, s.time + 1) for s, f, q_i, p_i in zip(states, updated.split(sizes), q.split(sizes), p.split(sizes))],
                list(prediction.split(sizes)))

    def target(self, trajectory, state, last):
        return super().target(trajectory, state.frames, last)

    def fit(self, trajectories, windows):
        Simulator.fit(self, trajectories, windows)
