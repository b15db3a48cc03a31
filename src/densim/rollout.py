"""Network graphs of trajectories, and autoregressive rollouts of a simulator.

During a compression rollout the axial box length is imposed (known), while the transverse box length is what
the simulated network decides: it is the zero-stress box of the predicted positions, the estimator that measures
the Poisson ratio from positions (:func:`densim.observables.zero_stress_box_y`), and sets the minimum image of
bond vectors. An impact trajectory's box is fixed, so its rollouts use it as it is.
"""

from __future__ import annotations

import json

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import xarray as xr
from torch_geometric.data import Data

from densim.observables import bond_images
from densim.protocols import PROTOCOLS, protocol_of


@dataclass
class TrajectoryGraph:
    """One network's static graph and its ground-truth trajectory (torch tensors, float64 positions)."""

    name: str
    graph: Data  # edge_index (both directions), rest_length, eigvecs [N, k], eigvals [1, k]
    positions: torch.Tensor  # (N, T, 2) float64
    box: torch.Tensor  # (T, 2) float64
    centre_x: float
    bonds: torch.Tensor  # (B, 2) each bond once
    images: torch.Tensor  # (B, 2) periodic image offsets of the bonds in frame 0
    stiffness: torch.Tensor  # (B,)
    protocol: str = "compression"  # a name of densim.protocols.PROTOCOLS
    far: torch.Tensor | None = None  # (N,) bool: the far strip of an impact trajectory
    arrival_threshold: float = float("nan")  # far-strip displacement at which the front has arrived (impact)
    uniaxial_poisson_ratio: float = float("nan")  # the network's linear-response C_xxyy / C_yyyy
    rollout_start: int = 0  # the frame after which rollouts of this trajectory start (trajectories.rollout_start)
    frame_time: float = float("nan")  # time between frames (lj time units)
    twin: torch.Tensor | None = None  # (N, T, 2) float64: the thermal twin's positions (densim.trajectories.thermal_twin)
    mass: float = 1.0  # node mass and Langevin damping time of the run (its md_settings)
    damping: float = float("nan")

    @property
    def frames(self) -> int:
        return int(self.positions.shape[1])

    def header(self) -> TrajectoryGraph:
        """The trajectory without its frames and graph tensors (positions of width 0 keep the node and frame counts):
        what an evaluation holds of it while others are rolled out (:class:`TrajectoryFiles`)."""
        nodes = int(self.positions.shape[0])
        empty = self.bonds.new_empty((0, 2))
        return replace(self, graph=Data(num_nodes=nodes), positions=self.positions.new_empty((nodes, self.frames, 0)), bonds=empty,
                       images=self.images.new_empty((0, 2)), stiffness=self.stiffness.new_empty(0), twin=None)

    def to(self, device) -> TrajectoryGraph:
        return replace(self, graph=self.graph.to(device), positions=self.positions.to(device), box=self.box.to(device),
                       bonds=self.bonds.to(device), images=self.images.to(device), stiffness=self.stiffness.to(device),
                       far=None if self.far is None else self.far.to(device), twin=None if self.twin is None else self.twin.to(device))


def trajectory_graph(trajectory: xr.Dataset, spectra: xr.Dataset | None) -> TrajectoryGraph:
    """Build the graph of a trajectory file's network with its Laplacian eigenpairs (none when ``spectra`` is None)."""
    bonds = torch.as_tensor(trajectory["bonds"].values.astype(np.int64))
    rest = torch.as_tensor(trajectory["rest_length"].values, dtype=torch.float64)
    edge_index = torch.cat([bonds.T, bonds.T.flip(0)], dim=1)
    spectrum = {}
    if spectra is not None:
        spectrum["eigvecs"] = torch.as_tensor(spectra["eigenvectors"].values, dtype=torch.get_default_dtype())
        spectrum["eigvals"] = torch.as_tensor(spectra["eigenvalues"].values, dtype=torch.get_default_dtype())[None]
    positions = torch.as_tensor(trajectory["positions"].values, dtype=torch.float64).permute(1, 0, 2).contiguous()
    box = torch.as_tensor(trajectory["box"].values, dtype=torch.float64)
    graph = Data(edge_index=edge_index, rest_length=torch.cat([rest, rest]), num_nodes=positions.shape[0], **spectrum)
    stiffness = torch.as_tensor(trajectory["stiffness"].values, dtype=torch.float64)
    name = f"{trajectory.attrs.get('dataset', '?')}/{trajectory.attrs.get('network', '?')}"
    images = bond_images(positions[:, 0], bonds, box[0])
    protocol = protocol_of(trajectory)
    timing = {"uniaxial_poisson_ratio": float(trajectory["uniaxial_poisson_ratio"]) if "uniaxial_poisson_ratio" in trajectory else float("nan"),
              "rollout_start": int(trajectory.attrs.get("rollout_start_frame", 0)),
              "frame_time": float(trajectory["time"].values[1] - trajectory["time"].values[0]) if trajectory.sizes["time"] > 1 else float("nan"),
              **{key: float(value) for key, value in json.loads(trajectory.attrs.get("md_settings", "{}")).items()
                 if key in ("mass", "damping") and value is not None},
              "twin": (torch.as_tensor(trajectory["twin_positions"].values, dtype=torch.float64).permute(1, 0, 2).contiguous()
                       if "twin_positions" in trajectory else None)}
    return TrajectoryGraph(name, graph, positions, box, float(box[0, 0]) / 2, bonds, images, stiffness, protocol=protocol.name,
                           **protocol.graph_fields(trajectory), **timing)


class TrajectoryFiles(Sequence):
    """Trajectory graphs read anew on every access, none held, with the :meth:`TrajectoryGraph.header` of each read
    once up front: an evaluation of large networks rolls them out a few at a time (``evaluation.rollouts_at_once``)."""

    def __init__(self, loaders: list[Callable[[], TrajectoryGraph]]) -> None:
        self._loaders = loaders
        self.headers = [loader().header() for loader in loaders]

    def __len__(self) -> int:
        return len(self._loaders)

    def __getitem__(self, index: int) -> TrajectoryGraph:
        return self._loaders[index]()


def headers(trajectories: Sequence[TrajectoryGraph]) -> list[TrajectoryGraph]:
    """What an evaluation keeps of every trajectory between groups (:meth:`TrajectoryGraph.header`)."""
    return list(trajectories.headers) if isinstance(trajectories, TrajectoryFiles) else [t.header() for t in trajectories]


def estimated_boxes(trajectories: list[TrajectoryGraph], positions: list[torch.Tensor], box_x: torch.Tensor) -> torch.Tensor:
    """Boxes of predicted frames of several trajectories, shape (G, 2), by each trajectory's protocol
    (:meth:`densim.protocols.Protocol.boxes`, one call per protocol): the imposed x length and the y length at zero
    transverse stress of the positions (N_i, 2) for a compression, the fixed box of an impact."""
    boxes = box_x.new_empty((len(trajectories), 2))
    for name in dict.fromkeys(t.protocol for t in trajectories):
        chosen = [i for i, t in enumerate(trajectories) if t.protocol == name]
        boxes[chosen] = PROTOCOLS[name].boxes([trajectories[i] for i in chosen], [positions[i] for i in chosen], box_x[chosen])
    return boxes


def rollout_start(trajectories: list[TrajectoryGraph], history: int, start: int | None = None) -> int:
    """The last ground-truth frame of rollouts of ``trajectories``: ``start`` (or the history), and never before the
    trajectories' own rollout start (``trajectories.rollout_start``; the latest of them for a union)."""
    return max([history if start is None else start, *(t.rollout_start for t in trajectories)])


@torch.no_grad()
def rollouts(simulator, trajectories: list[TrajectoryGraph], steps: int | None = None, start: int | None = None) -> list[torch.Tensor]:
    """Roll a simulator out on several trajectories at once, from the ground-truth frames up to ``start`` (by
    default the first ``history + 1``: ``start = history``).

    Every step advances all trajectories that still have frames to go in one call of
    :meth:`densim.simulator.Simulator.step` (one batched network call).

    Parameters
    ----------
    simulator : densim.simulator.Simulator
    trajectories : list of TrajectoryGraph
    steps : int, optional
        Predicted frames per trajectory; by default up to each trajectory's last frame.
    start : int, optional
        The last ground-truth frame (at least the history): the first predicted frame is ``start + 1``, whatever
        the history, so that rollouts of several histories predict the same frames.

    Returns
    -------
    list of Tensor, shape (N, T, 2) each
        The first ``start + 1`` frames are ground truth, the rest predicted (``T`` = all frames unless
        ``steps`` limits the predicted ones).
    """
    h = simulator.history if start is None else start
    if h < simulator.history:
        raise ValueError(f"a rollout from frame {start} has fewer than the history {simulator.history} frames before it")
    totals = [t.frames if steps is None else min(t.frames, h + 1 + steps) for t in trajectories]
    states = simulator.initial_states(trajectories, [h] * len(trajectories))
    frames = [[t.positions[:, : h + 1]] for t in trajectories]
    for last in range(h, max(totals, default=0) - 1):
        active = [i for i, total in enumerate(totals) if last + 1 < total]
        advanced, _ = simulator.step([trajectories[i] for i in active], [states[i] for i in active], [last] * len(active))
        for i, state in zip(active, advanced):
            states[i] = state
            frames[i].append(simulator.positions(state)[:, None])
    return [torch.cat(f, dim=1) for f in frames]


def rollout(simulator, trajectory: TrajectoryGraph, steps: int | None = None) -> torch.Tensor:
    """One trajectory's rollout (see :func:`rollouts`), shape (N, T, 2)."""
    return rollouts(simulator, [trajectory], steps)[0]
