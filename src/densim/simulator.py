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

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from densim.springs import minimum_image
from densim.observables import affine_velocity, residual_velocities, spring_forces
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
class ModalState:
    """A rollout state of :class:`LinearDynamicsSimulator`: the frames, shape (N, history + 1, 2) float64, and the modal
    coordinates ``q`` and velocities ``p`` (2N,) of the non-affine displacement from the last input frame."""

    frames: Tensor
    q: np.ndarray
    p: np.ndarray


@dataclass(frozen=True)
class _Modes:
    """What :class:`LinearDynamicsSimulator` needs of one trajectory at its last input frame ``last`` (forces over the
    node mass): the eigenvectors ``phi`` (2N, 2N) and eigenvalues ``omega2`` of the Hessian with the transverse box at
    zero stress, the modal forces of a unit axial box strain (``axial``) and of the springs there (``offset``), how the
    zero-stress transverse strain follows from the displacement and the axial strain (``e_y = ey_w . w + ey_x e_x +
    ey_0``), the positions of the last input frame about the box centre, the centre and the damping rate."""

    last: int
    phi: np.ndarray
    omega2: np.ndarray
    axial: np.ndarray
    offset: np.ndarray
    ey_w: np.ndarray
    ey_x: float
    ey_0: float
    origin: np.ndarray
    centre: np.ndarray
    rate: float


def network_hessian(positions: np.ndarray, box: np.ndarray, bonds: np.ndarray, rest_length: np.ndarray, stiffness: np.ndarray):
    """The dense Hessian (2N, 2N) of a spring network's energy at ``positions`` (stressed or not): ``A^T K A`` plus each
    bond's tension ``t = k (r - l0)`` over its length on the directions across it; the springs' forces (2N,), the unit
    bond vectors, the bond vectors and the tensions."""
    vectors = minimum_image(positions[bonds[:, 1]] - positions[bonds[:, 0]], box)
    length = np.linalg.norm(vectors, axis=1)
    unit = vectors / length[:, None]
    tension = stiffness * (length - rest_length)
    along = np.einsum("bi,bj->bij", unit, unit)
    block = stiffness[:, None, None] * along + (tension / length)[:, None, None] * (np.eye(2) - along)  # (B, 2, 2)
    dofs = np.stack([2 * bonds[:, 0], 2 * bonds[:, 0] + 1, 2 * bonds[:, 1], 2 * bonds[:, 1] + 1], axis=1)
    local = np.concatenate([np.concatenate([block, -block], axis=2), np.concatenate([-block, block], axis=2)], axis=1)  # (B, 4, 4)
    hessian = np.zeros((2 * len(positions), 2 * len(positions)))
    np.add.at(hessian, (dofs[:, :, None], dofs[:, None, :]), local)
    force = spring_forces(positions[None], box[None], bonds, rest_length, stiffness)[0]
    return hessian, force.ravel(), unit, vectors, tension


class LinearDynamicsSimulator(Simulator):
    """The physics baseline: the damped linear dynamics of the network's own Hessian, advanced exactly between frames.

    Linearised about the last input frame ``L``: with ``x = c + (1 + e) (x_L - c + w)`` (``c`` the box centre, ``e`` the
    box strain from frame ``L``, ``w`` the non-affine displacement; LAMMPS's ``remap x`` moves nodes affinely with the
    box), the energy is ``E_L - F_L . w + w^T H w / 2 + w^T (b_x e_x + b_y e_y) + V (s . e) + V e^T C e / 2``: the
    springs' force ``F_L`` and stress ``s`` at frame ``L`` (the network's state, strained and warm as it is), the
    Hessian ``H`` there (with the bonds' tension), the forces ``b`` and affine stiffness ``C`` of a box strain. The
    axial strain ``e_x`` is the imposed one (the true ``Lx`` of every frame, known in advance as for every simulator);
    the transverse strain is at zero transverse stress at every instant, ``dE/de_y = 0``, which eliminates it exactly:
    the nodes move under ``H - b_y b_y^T / (V C_yy)`` (the Schur complement: the box gives way), the force
    ``F_L + b_y s_y / C_yy`` and ``-(b_x - b_y C_yx / C_yy) e_x``, with the Langevin friction on the peculiar velocity,
    the node mass and damping time as the trajectory file records them (its ``md_settings``); no thermal noise. Within
    a frame ``e_x`` is linear in time, so each of the 2N modes is a damped oscillator under a force linear in time,
    advanced in closed form (:func:`advance_modes`); the state starts at ``w = 0`` with the velocity that takes the input
    frame before to ``L`` under the same dynamics (:func:`modal_velocity`). An impact's box is fixed: no strain, the
    Hessian as it is. Inside a compression's start-up transient the barostat's box lags the zero-stress one, and the
    first predicted frame jumps to it.

    Dense modes: networks of up to :attr:`MAX_NODES` nodes. Its network (:class:`~densim.models.baselines.LinearDynamics`)
    has no parameters and is never called.
    """

    closed_form = True
    #: Largest network whose 2N x 2N modes the simulator computes (densely, once per trajectory and rollout).
    MAX_NODES = 3000

    def modes(self, trajectory: TrajectoryGraph, last: int) -> _Modes:
        """The trajectory's :class:`_Modes` at its last input frame ``last``."""
        from densim.elasticity import affine_extensions, compatibility_matrix

        nodes = trajectory.positions.shape[0]
        if nodes > self.MAX_NODES:
            raise ValueError(f"{trajectory.name}: the linear-dynamics baseline diagonalises the Hessian densely, up to "
                             f"{self.MAX_NODES} nodes; this network has {nodes}")
        box = trajectory.box[last].cpu().numpy()
        positions = trajectory.positions[:, last].cpu().numpy()
        bonds, stiffness = trajectory.bonds.cpu().numpy(), trajectory.stiffness.cpu().numpy()
        hessian, force, unit, vectors, tension = network_hessian(positions, box, bonds,
                                                                 trajectory.graph.rest_length[: len(bonds)].cpu().numpy(), stiffness)
        extension = affine_extensions(unit, vectors)[:, :2]  # per unit box strain along x, along y
        coupling = compatibility_matrix(unit, bonds, nodes).T @ (stiffness[:, None] * extension)  # (2N, 2): b_x, b_y
        volume_c = extension.T @ (stiffness[:, None] * extension)  # V C (2, 2)
        volume_s = extension.T @ tension  # V s (2,)
        b_x, b_y = coupling[:, 0], coupling[:, 1]
        yy, yx = volume_c[1, 1], volume_c[1, 0]
        if trajectory.protocol != "compression":  # a fixed box (an impact): no strain, nothing to eliminate
            b_x, b_y, volume_s = np.zeros_like(b_x), np.zeros_like(b_y), np.zeros(2)
        omega2, phi = np.linalg.eigh((hessian - np.outer(b_y, b_y) / yy) / trajectory.mass)
        centre = trajectory.box[0].cpu().numpy() / 2
        return _Modes(last, phi, np.maximum(omega2, 0.0), -phi.T @ (b_x - b_y * yx / yy) / trajectory.mass,
                      phi.T @ (force + b_y * volume_s[1] / yy) / trajectory.mass, -(phi.T @ b_y) / yy, -yx / yy, -volume_s[1] / yy,
                      positions - centre, centre, 1.0 / trajectory.damping)

    def _strain(self, trajectory: TrajectoryGraph, modes: _Modes, frame: int) -> float:
        """The axial box strain of ``frame`` from the last input frame's box."""
        return float(trajectory.box[frame, 0] / trajectory.box[modes.last, 0]) - 1.0

    def initial_states(self, trajectories, lasts, generator=None) -> list[ModalState]:
        """The states of a rollout's trajectories, each with its modes at its last input frame (kept for the rollout)."""
        self._modes = {trajectory.name: self.modes(trajectory, last) for trajectory, last in zip(trajectories, lasts)}
        return super().initial_states(trajectories, lasts, generator)

    def initial_state(self, trajectory, last, generator=None) -> ModalState:
        frames = super().initial_state(trajectory, last, generator)
        modes = self._modes[trajectory.name]
        before = trajectory.box[last - 1].cpu().numpy() / trajectory.box[last].cpu().numpy() - 1.0
        w = ((frames[:, -2].cpu().numpy() - modes.centre) / (1.0 + before) - modes.origin).ravel()
        q0, q1 = modes.phi.T @ w, np.zeros(len(w))
        # the velocity that takes the input frame before to the last one under the same dynamics
        duration = trajectory.frame_time
        velocity = modal_velocity(q0, q1, modes.omega2, modes.rate, modes.offset + modes.axial * before[0],
                                  -modes.axial * before[0] / duration, duration)
        return ModalState(frames, q1, velocity)

    def positions(self, state: ModalState) -> Tensor:
        return state.frames[:, -1]

    def step(self, trajectories, states, lasts):
        moved = []
        for trajectory, state, last in zip(trajectories, states, lasts):
            modes, duration = self._modes[trajectory.name], trajectory.frame_time
            start, end = self._strain(trajectory, modes, last), self._strain(trajectory, modes, last + 1)
            q, p = advance_modes(state.q, state.p, modes.omega2, modes.rate, modes.offset + modes.axial * start,
                                 modes.axial * (end - start) / duration, duration)
            strain = np.array([end, modes.ey_w @ q + modes.ey_x * end + modes.ey_0])  # the zero-stress transverse box
            following = modes.centre + (1.0 + strain) * (modes.origin + (modes.phi @ q).reshape(-1, 2))
            frames = torch.cat([state.frames[:, 1:], torch.as_tensor(following, dtype=state.frames.dtype)[:, None]], dim=1)
            moved.append(ModalState(frames, q, p))
        return moved, [torch.zeros_like(s.frames[:, -1]) for s in states]

    def fit(self, trajectories, windows):
        """Nothing to fit."""


def _propagator(omega2: np.ndarray, rate: float, duration: float):
    """Per mode, the homogeneous map ``[z, z'] -> [[a, b], [c, d]] [z, z']`` of ``z'' + rate z' + omega2 z = 0`` over
    ``duration``: ``exp(M t) = exp(-rate t / 2) [cosh(k t) I + sinh(k t) / k (M + rate / 2 I)]``,
    ``M = [[0, 1], [-omega2, -rate]]``, ``k = sqrt(rate^2 / 4 - omega2)`` (complex where a mode rings)."""
    kappa = np.sqrt((rate**2 / 4 - omega2).astype(complex))
    cosh = np.cosh(kappa * duration)
    sinhc = np.where(np.abs(kappa) * duration < 1e-8, duration, np.sinh(kappa * duration) / np.where(kappa == 0, 1, kappa))
    decay = math.exp(-rate * duration / 2)
    return ((decay * (cosh + rate / 2 * sinhc)).real, (decay * sinhc).real, (-decay * omega2 * sinhc).real,
            (decay * (cosh - rate / 2 * sinhc)).real)


def _particular(omega2: np.ndarray, rate: float, force: np.ndarray, slope: np.ndarray):
    """Which modes are stiff (``omega2`` above 1e-12 of the largest), and the particular solution ``alpha + beta t`` of
    ``q'' + rate q' + omega2 q = force + slope t`` of each stiff mode (0 for the others: translations and floppy modes,
    on which no force acts)."""
    stiff = omega2 > 1e-12 * max(float(omega2.max()), 1e-300)
    safe = np.where(stiff, omega2, 1.0)
    beta = np.where(stiff, slope / safe, 0.0)
    return stiff, np.where(stiff, (force - rate * beta) / safe, 0.0), beta


def advance_modes(q: np.ndarray, p: np.ndarray, omega2: np.ndarray, rate: float, force: np.ndarray, slope: np.ndarray,
                  duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Damped oscillators ``q'' + rate q' + omega2 q = force + slope t``, advanced exactly by ``duration``: the
    particular solution ``alpha + beta t`` plus the homogeneous part (:func:`_propagator`). Modes without stiffness
    glide under friction alone."""
    stiff, alpha, beta = _particular(omega2, rate, force, slope)
    a, b, c, d = _propagator(omega2, rate, duration)
    z, dz = q - alpha, p - beta
    glide = (1 - math.exp(-rate * duration)) / rate
    q1 = np.where(stiff, a * z + b * dz + alpha + beta * duration, q + p * glide)
    p1 = np.where(stiff, c * z + d * dz + beta, p * math.exp(-rate * duration))
    return q1, p1


def modal_velocity(q0: np.ndarray, q1: np.ndarray, omega2: np.ndarray, rate: float, force: np.ndarray, slope: np.ndarray,
                   duration: float) -> np.ndarray:
    """The velocities at the end of ``duration`` of the oscillators of :func:`advance_modes` that go from ``q0`` to
    ``q1`` in it: the velocity at the start that reaches ``q1`` is solved for exactly, then advanced. Where two
    positions cannot tell it (a mode that rings through about a whole number of half periods in ``duration``, or has
    decayed to nothing: ``|b|`` below 1e-6 of ``duration``), the velocity is the frame's difference quotient."""
    stiff, alpha, beta = _particular(omega2, rate, force, slope)
    a, b, c, d = _propagator(omega2, rate, duration)
    glide = (1 - math.exp(-rate * duration)) / rate
    known = np.abs(b) > 1e-6 * duration
    start = np.where(known, beta + (q1 - alpha - beta * duration - a * (q0 - alpha)) / np.where(known, b, 1.0), 0.0)
    end = np.where(known, c * (q0 - alpha) + d * (start - beta) + beta, (q1 - q0) / duration)
    free = (q1 - q0) / glide * math.exp(-rate * duration)
    return np.where(stiff, end, free)


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
