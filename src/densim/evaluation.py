"""Rollout evaluation: autoregressive rollouts of test trajectories scored per trajectory and step.

Steps are counted from the last input frame: step ``s`` predicts frame ``h + s`` of a trajectory whose first
``h + 1`` frames (``h`` the history) were given, or with ``start_frame`` frame ``start_frame + s`` of a rollout given
the frames up to ``start_frame`` (the same predicted frames for every history: the history ablation compares
histories, not rollout start frames). For each test trajectory and step:

- ``l2``: mean over nodes of the Euclidean distance between predicted and true positions, in small-particle
  diameters (the study's :math:`L_2[\\sigma]`), :math:`\\frac1N \\sum_i \\lVert \\hat x_i - x_i \\rVert`;
- ``rms``: its root-mean-square companion, :math:`\\sqrt{\\frac1N \\sum_i \\lVert \\hat x_i - x_i \\rVert^2}`;
- ``mse`` and ``frozen_mse``: mean squared distance of the prediction, and of the frozen baseline (the last input
  frame held), from the truth; their ratio is the MSE relative to the frozen baseline;
- ``poisson_ratio``: from the predicted positions (the zero-stress estimator of
  :func:`densim.observables.poisson_ratio_from_positions`), and ``poisson_ratio_true`` from the simulated box;
- ``mode_energy``: the squared error projected on each of the first ``k`` Laplacian eigenvectors of the network
  (lowest eigenvalues first), and ``slow_share``, the share of the squared error in their span (the rest is on
  the fast modes);
- ``blown_up``: the rollout is non-finite or its ``l2`` exceeds a threshold, at this step or before. Blown-up
  rollouts stay in the file; their non-finite metrics are NaN.

Across test trajectories, per step (over the rollouts that are finite at that step, with ``blown_up_count``
beside them): ``relative_mse`` as a ratio of means (the frozen baseline scores exactly 1), ``poisson_r2`` (R^2 of
the predicted against the true Poisson ratio, the truth as reference) and ``poisson_bias`` (mean signed error).

Impact trajectories (:func:`densim.md.impact`: fixed box, no Poisson ratio) are scored on the wave front
instead: ``far_displacement`` per step (predicted and true), the frame at which the front reaches the far strip
(``arrival_frame``, predicted and true, against the reference's threshold) and, across trajectories,
``arrival_error`` (mean absolute error in frames) and ``arrival_bias``; their Poisson ratio variables are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from densim.config import check_settings, setting, typed_config
from densim.observables import r_squared
from densim.protocols import PROTOCOLS
from densim.rollout import TrajectoryGraph, headers, rollout_start, rollouts

@dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation settings (the ``evaluation`` config section; defaults and bounds from the schema)."""

    table_step: int = setting("evaluation.table_step")
    blowup_l2: float = setting("evaluation.blowup_l2")
    start_frame: int | None = setting("evaluation.start_frame")
    rollouts_at_once: int | None = setting("evaluation.rollouts_at_once")

    def __post_init__(self):
        check_settings(self, "evaluation")


def evaluation_config(section: dict) -> EvaluationConfig:
    return typed_config(EvaluationConfig, section, "evaluation")


#: The definitions written into every evaluation file, by variable.
DEFINITIONS = {
    "l2": "mean over nodes of the Euclidean distance between predicted and true positions (small-particle diameters)",
    "rms": "root mean square over nodes of the Euclidean distance between predicted and true positions (small-particle diameters)",
    "mse": "mean over nodes of the squared distance between predicted and true positions",
    "frozen_mse": "mean over nodes of the squared distance between the last input frame (held) and the true positions",
    "relative_mse": "sum over finite rollouts of mse over the same sum of frozen_mse (a ratio of means: the frozen baseline scores 1)",
    "poisson_ratio": "Poisson ratio from the predicted positions (transverse box at zero transverse stress), measured from the last input frame (attribute poisson_reference_frame)",
    "poisson_ratio_true": "Poisson ratio of the simulation, from its box, measured from the last input frame",
    "poisson_r2": "R^2 of poisson_ratio against poisson_ratio_true over the finite rollouts (1 - SSE / SST, SST about the mean truth)",
    "poisson_bias": "mean over the finite rollouts of poisson_ratio - poisson_ratio_true",
    "mode_energy": "squared positional error projected on each Laplacian eigenvector of the network (lowest eigenvalues first)",
    "slow_share": "share of the squared positional error in the span of the first k Laplacian eigenvectors (the rest is on fast modes)",
    "poisson_ratio_network": "the test network's linear-response uniaxial Poisson ratio C_xxyy / C_yyyy (an oracle that knows the network, not the dynamics)",
    "oracle_poisson_r2": "R^2 of poisson_ratio_network against poisson_ratio_true at this step (what knowing the network alone scores)",
    "blown_up": "the rollout is non-finite, or its l2 exceeds blowup_l2, at this step or before",
    "blown_up_count": "test rollouts blown up at this step",
    "predicted_positions": "predicted node positions at the table step and the last step (NaN beyond a network's node count)",
    "far_displacement": "impact: mean displacement from frame 0 of the far-strip nodes, predicted (NaN for compressions)",
    "far_displacement_true": "impact: the same of the simulation",
    "arrival_frame": "impact: frame (interpolated) at which the predicted far_displacement first reaches the simulation's "
                     "arrival threshold; the last frame when it never does (censored)",
    "arrival_frame_true": "impact: the same of the simulation",
    "arrival_error": "impact: mean over test trajectories of |arrival_frame - arrival_frame_true| (frames; NaN for compressions)",
    "arrival_bias": "impact: mean over test trajectories of arrival_frame - arrival_frame_true (frames)",
}


def positional_errors(predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-frame positional errors of a rollout.

    Parameters
    ----------
    predicted, truth : Tensor, shape (N, S, 2)

    Returns
    -------
    dict of ndarray, shape (S,)
        ``l2`` (mean distance), ``rms`` (root mean squared distance) and ``mse`` (mean squared distance).
    """
    squared = ((predicted - truth) ** 2).sum(-1)  # (N, S)
    return {"l2": squared.sqrt().mean(0).cpu().numpy(), "rms": squared.mean(0).sqrt().cpu().numpy(), "mse": squared.mean(0).cpu().numpy()}


def mode_energies(error: torch.Tensor, eigenvectors: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Squared error on each eigenmode, and the share of the squared error in their span.

    Parameters
    ----------
    error : Tensor, shape (N, S, 2)
        Predicted minus true positions.
    eigenvectors : Tensor, shape (N, k)
        Orthonormal columns (the symmetric normalised Laplacian's eigenvectors); all-zero columns (padding of
        networks with fewer than ``k`` nodes) give NaN.

    Returns
    -------
    energy : ndarray, shape (S, k)
        ``sum_xy (u_m . e_xy)^2`` per frame and mode.
    slow_share : ndarray, shape (S,)
        ``sum_m energy_m / sum_i |e_i|^2``.
    """
    vectors = eigenvectors.to(error.dtype)
    coefficients = torch.einsum("nk,nsc->skc", vectors, error)  # (S, k, 2)
    energy = (coefficients**2).sum(-1)
    total = (error**2).sum((0, 2))
    share = energy.sum(-1) / total
    energy = energy.cpu().numpy()
    energy[:, (vectors**2).sum(0).cpu().numpy() < 0.5] = np.nan
    return energy, share.cpu().numpy()


def _flag_blown_up(l2: np.ndarray, blowup_l2: float) -> np.ndarray:
    """Steps at or after the first non-finite or too large ``l2`` (shape (S,))."""
    bad = ~np.isfinite(l2) | (np.nan_to_num(l2, nan=np.inf) > blowup_l2)
    return np.maximum.accumulate(bad)


def score_trajectory(predicted: torch.Tensor, trajectory: TrajectoryGraph, last_input: int, blowup_l2: float) -> dict[str, np.ndarray]:
    """Metrics of one rollout at every step (see the module docstring).

    Parameters
    ----------
    predicted : Tensor, shape (N, T, 2)
        A rollout whose first ``last_input + 1`` frames are ground truth.
    trajectory : TrajectoryGraph
    last_input : int
        The last ground-truth frame (the history, or the evaluation's start frame).
    blowup_l2 : float

    Returns
    -------
    dict of ndarray
        Per step (shape (S,), ``S = T - last_input - 1``): l2, rms, mse, frozen_mse, poisson_ratio,
        poisson_ratio_true, far_displacement, far_displacement_true, slow_share, blown_up; ``mode_energy`` of shape
        (S, k) when the graph has eigenvectors; scalars arrival_frame and arrival_frame_true.
    """
    frames = predicted.shape[1]
    truth = trajectory.positions[:, :frames].to(predicted)
    steps = slice(last_input + 1, frames)
    scores = positional_errors(predicted[:, steps], truth[:, steps])
    scores["frozen_mse"] = positional_errors(truth[:, last_input : last_input + 1].expand_as(truth[:, steps]), truth[:, steps])["mse"]
    scores.update(PROTOCOLS[trajectory.protocol].scores(trajectory, predicted, truth, last_input))
    if "eigvecs" in trajectory.graph:
        scores["mode_energy"], scores["slow_share"] = mode_energies(predicted[:, steps] - truth[:, steps], trajectory.graph.eigvecs)
    scores["blown_up"] = _flag_blown_up(scores["l2"], blowup_l2)
    return scores


def across_trajectories(per_trajectory: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-step metrics across test trajectories, over the rollouts finite at each step.

    Parameters
    ----------
    per_trajectory : dict of ndarray, shape (trajectory, step)
        ``mse``, ``frozen_mse``, ``poisson_ratio``, ``poisson_ratio_true`` and ``blown_up`` of every test
        trajectory (:func:`score_trajectory`, NaN beyond the end of shorter rollouts).

    Returns
    -------
    dict of ndarray
        relative_mse, poisson_r2, poisson_bias, blown_up_count (shape (step,)); arrival_error and arrival_bias
        (scalars, NaN without arrival frames).
    """
    mse, frozen, nu, nu_true, blown = (per_trajectory[name] for name in ("mse", "frozen_mse", "poisson_ratio", "poisson_ratio_true", "blown_up"))
    finite = np.isfinite(mse)
    relative = np.where(finite, mse, 0).sum(0) / np.where(finite, frozen, 0).sum(0)
    steps = range(mse.shape[1])
    return {
        "relative_mse": relative,
        "poisson_r2": np.array([r_squared(nu_true[:, s], nu[:, s]) if np.isfinite(nu[:, s]).sum() > 1 else np.nan for s in steps]),
        "poisson_bias": np.array([np.nanmean(nu[:, s] - nu_true[:, s]) if np.isfinite(nu[:, s]).any() else np.nan for s in steps]),
        "blown_up_count": blown.sum(0).astype(np.int64),
        **_arrival(per_trajectory.get("arrival_frame", np.array([])), per_trajectory.get("arrival_frame_true", np.array([]))),
    }


def _arrival(predicted: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """Mean absolute and signed error of arrival frames over the trajectories that have a true arrival."""
    error = (predicted - true)[np.isfinite(true)]
    if not error.size:
        return {"arrival_error": np.array(np.nan), "arrival_bias": np.array(np.nan)}
    return {"arrival_error": np.abs(error).mean(), "arrival_bias": error.mean()}


def _stack(arrays: list[np.ndarray], steps: int) -> np.ndarray:
    """Per-trajectory arrays of leading length <= ``steps``, NaN-padded to one array (trajectory, steps, ...)."""
    out = np.full((len(arrays), steps, *arrays[0].shape[1:]), np.nan)
    for i, array in enumerate(arrays):
        out[i, : len(array)] = array
    return out


def _window_attrs(trajectories: list[TrajectoryGraph], start: int, table_step: int) -> dict:
    """Where the rollout window lies: its start in lj time, the time between frames, the axial strain (median over
    trajectories, from frame 0) at the start and at the table step, the Poisson ratio's reference frame (the start:
    :func:`densim.observables.rebased_poisson_ratio`), and the trajectories' own rollout start
    (``trajectories.rollout_start``; 0: inside the start-up transient)."""
    frame_time = float(np.median([t.frame_time for t in trajectories]))

    def strain(frame):
        values = [float(t.box[min(frame, t.frames - 1), 0] / t.box[0, 0] - 1) for t in trajectories]
        return float(np.median(values))

    return {"frame_time": frame_time, "start_time": start * frame_time, "start_strain": strain(start),
            "table_strain": strain(start + table_step), "poisson_reference_frame": start,
            "rollout_start_frame": max(t.rollout_start for t in trajectories)}


def evaluate(simulator, trajectories: list[TrajectoryGraph], config: EvaluationConfig = EvaluationConfig(), batched: bool = True,
             attrs: dict | None = None) -> xr.Dataset:
    """Roll a simulator out on test trajectories to their last frames and score every step.

    Parameters
    ----------
    simulator : densim.simulator.Simulator
    trajectories : list of TrajectoryGraph, or densim.rollout.TrajectoryFiles
        The test trajectories, with eigenvectors for the error by eigenmode; a ``TrajectoryFiles`` reads each group's
        when its turn comes.
    config : EvaluationConfig
        ``table_step``: the step whose predicted positions are kept (with the last step's), and that tables
        report (the last step when rollouts are shorter); ``blowup_l2``: the ``l2`` (small-particle diameters)
        beyond which a rollout counts as blown up; ``rollouts_at_once``: trajectories rolled out and scored together
        (all of them when None).
    batched : bool
        Advance all trajectories together, one batched network call per step (:func:`densim.rollout.rollouts`),
        or one trajectory at a time (the same numbers; for benchmarks).
    attrs : dict, optional
        File attributes (provenance) to add.

    Returns
    -------
    xarray.Dataset
        Dimensions ``trajectory``, ``step`` (1, 2, ...), ``mode``, ``kept_step``, ``node``, ``xy``; variables as in
        :data:`DEFINITIONS`.
    """
    if not len(trajectories):
        raise ValueError("no test trajectories to evaluate")
    whole = trajectories
    trajectories = headers(whole)  # what is kept of every trajectory; its frames are read group by group
    protocols = sorted({t.protocol for t in trajectories})
    if len(protocols) > 1:
        raise ValueError(f"test trajectories of several protocols ({', '.join(protocols)}) cannot be scored together")
    history = simulator.history
    if config.start_frame is not None and config.start_frame < history:
        raise ValueError(f"evaluation.start_frame {config.start_frame} leaves fewer input frames than the history {history} needs")
    start = rollout_start(trajectories, history, config.start_frame)
    steps = max(t.frames for t in trajectories) - start - 1
    if steps < 1:
        raise ValueError(f"trajectories of {steps + start + 1} frames leave no step to roll out after frame {start}")
    kept = sorted({min(config.table_step, steps), steps})  # the table step, or the last of shorter rollouts
    nodes = max(int(t.positions.shape[0]) for t in trajectories)
    positions = np.full((len(trajectories), len(kept), nodes, 2), np.nan)
    simulator.eval()
    scores, group = [], config.rollouts_at_once or len(trajectories)
    for first in range(0, len(trajectories), group):  # only this group's frames and predictions are held
        loaded = [whole[i] for i in range(first, min(first + group, len(trajectories)))]
        predicted = rollouts(simulator, loaded, start=start) if batched else [rollouts(simulator, [t], start=start)[0] for t in loaded]
        scores += [score_trajectory(p, t, start, config.blowup_l2) for p, t in zip(predicted, loaded)]
        for i, p in enumerate(predicted, start=first):
            for j, step in enumerate(kept):
                if start + step < p.shape[1]:
                    positions[i, j, : p.shape[0]] = p[:, start + step].cpu().numpy()
        del loaded, predicted
    stacked = {name: np.stack([s[name] for s in scores]) if scores[0][name].ndim == 0 else _stack([s[name] for s in scores], steps)
               for name in scores[0]}
    stacked["blown_up"] = np.nan_to_num(stacked["blown_up"], nan=0).astype(bool)  # padding beyond shorter rollouts
    dims = {0: (), 1: ("trajectory",), 2: ("trajectory", "step"), 3: ("trajectory", "step", "mode")}
    data_vars = {name: (dims[value.ndim], value) for name, value in stacked.items()}
    data_vars.update({name: (("step",) if np.ndim(value) else (), value) for name, value in across_trajectories(stacked).items()})
    data_vars["predicted_positions"] = (("trajectory", "kept_step", "node", "xy"), positions)
    data_vars["nodes"] = ("trajectory", np.array([t.positions.shape[0] for t in trajectories]))
    data_vars.update(PROTOCOLS[protocols[0]].evaluation_variables(trajectories, stacked))
    window = _window_attrs(trajectories, start, kept[0])
    ds = xr.Dataset(
        {name: (dims, value, {"description": DEFINITIONS[name]} if name in DEFINITIONS else {}) for name, (dims, value) in data_vars.items()},
        coords={"trajectory": [t.name for t in trajectories], "step": np.arange(1, steps + 1), "kept_step": kept, "xy": ["x", "y"]},
        attrs={"protocol": protocols[0], "history": history, "start_frame": start, "table_step": kept[0], "blowup_l2": config.blowup_l2,
               **window,
               "definitions": "; ".join(f"{k}: {v}" for k, v in DEFINITIONS.items()), **(attrs or {})},
    )
    if "mode" in ds.dims:
        ds = ds.assign_coords(mode=np.arange(ds.sizes["mode"]))
    return ds


def example_rollout(checkpoint, trajectory: xr.Dataset, spectra: xr.Dataset | None, start: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One trajectory rolled out by a trained simulator, for pictures (:func:`densim.plots.rollout_figure`): the
    predicted and true positions of frames ``start`` to ``start + steps`` (the first is the last input frame), each
    of shape (steps + 1, N, 2), as :func:`evaluate` rolls them out."""
    from densim.models import load_simulator
    from densim.rollout import trajectory_graph

    simulator, _ = load_simulator(checkpoint)
    simulator.eval()
    graph = trajectory_graph(trajectory, spectra)
    predicted = rollouts(simulator, [graph], steps=steps, start=start)[0][:, start:start + steps + 1]
    truth = graph.positions[:, start:start + predicted.shape[1]]
    return predicted.permute(1, 0, 2).cpu().numpy(), truth.permute(1, 0, 2).cpu().numpy()
