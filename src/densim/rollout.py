"""Network graphs of trajectories, and autoregressive rollouts of a learned simulator.

During a rollout the axial box length is imposed (known), while the transverse box length is what the
simulated network decides: it is estimated from the predicted positions with the same estimator that measures
the Poisson ratio from positions (:mod:`densim.observables`), and used for the minimum image of bond vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from torch_geometric.data import Data

from densim.observables import strain_design_matrix


@dataclass
class TrajectoryGraph:
    """One network's static graph and its ground-truth trajectory (torch tensors, float64 positions)."""

    name: str
    graph: Data  # edge_index (both directions), rest_length, eigvecs [N, k], eigvals [1, k]
    positions: torch.Tensor  # (N, T, 2) float64
    box: torch.Tensor  # (T, 2) float64
    centre_x: float
    slope_row: torch.Tensor  # (N,) least-squares row giving the transverse strain from y displacements

    @property
    def frames(self) -> int:
        return int(self.positions.shape[1])

    def to(self, device) -> TrajectoryGraph:
        return TrajectoryGraph(self.name, self.graph.to(device), self.positions.to(device), self.box.to(device), self.centre_x, self.slope_row.to(device))


def trajectory_graph(trajectory: xr.Dataset, spectra: xr.Dataset) -> TrajectoryGraph:
    """Build the graph of a trajectory file's network with its Laplacian eigenpairs."""
    bonds = torch.as_tensor(trajectory["bonds"].values.astype(np.int64))
    rest = torch.as_tensor(trajectory["rest_length"].values, dtype=torch.float64)
    edge_index = torch.cat([bonds.T, bonds.T.flip(0)], dim=1)
    eigvecs = torch.as_tensor(spectra["eigenvectors"].values, dtype=torch.get_default_dtype())
    eigvals = torch.as_tensor(spectra["eigenvalues"].values, dtype=torch.get_default_dtype())[None]
    positions = torch.as_tensor(trajectory["positions"].values, dtype=torch.float64).permute(1, 0, 2).contiguous()
    box = torch.as_tensor(trajectory["box"].values, dtype=torch.float64)
    graph = Data(edge_index=edge_index, rest_length=torch.cat([rest, rest]), eigvecs=eigvecs, eigvals=eigvals, num_nodes=positions.shape[0])
    reference = trajectory["positions"].values[0]
    slope_row = torch.as_tensor(np.linalg.pinv(strain_design_matrix(reference, trajectory["box"].values[0]))[1])
    name = f"{trajectory.attrs.get('dataset', '?')}/{trajectory.attrs.get('network', '?')}"
    return TrajectoryGraph(name, graph, positions, box, float(box[0, 0]) / 2, slope_row)


def estimated_box(trajectory: TrajectoryGraph, positions_t: torch.Tensor, box_x: torch.Tensor) -> torch.Tensor:
    """Box of a predicted frame: imposed x length, y length from the positions' transverse strain."""
    box0 = trajectory.box[0]
    displacement_y = positions_t[:, 1] - trajectory.positions[:, 0, 1]
    displacement_y = displacement_y - box0[1] * torch.round(displacement_y / box0[1])
    strain_y = displacement_y @ trajectory.slope_row
    return torch.stack([box_x, box0[1] * (1 + strain_y)])


@torch.no_grad()
def rollout(simulator, trajectory: TrajectoryGraph, steps: int | None = None) -> torch.Tensor:
    """Roll the simulator out from the first ``history + 1`` ground-truth frames.

    Returns
    -------
    Tensor, shape (N, T, 2)
        The first ``history + 1`` frames are ground truth, the rest predicted (``T`` = all frames unless
        ``steps`` limits the predicted ones).
    """
    h = simulator.history
    total = trajectory.frames if steps is None else min(trajectory.frames, h + 1 + steps)
    positions = [trajectory.positions[:, t] for t in range(h + 1)]
    box_x = trajectory.box[:, 0]
    for t in range(h, total - 1):
        window = torch.stack(positions[-(h + 1) :], dim=1)
        box_t = estimated_box(trajectory, window[:, -1], box_x[t])
        out = simulator(trajectory.graph, window, box_t, box_x[t - h : t + 1], trajectory.centre_x)
        positions.append(simulator.postprocess(out, window, box_x[t + 1], box_x[t - h : t + 1], trajectory.centre_x))
    return torch.stack(positions, dim=1)
