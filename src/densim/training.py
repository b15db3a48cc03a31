"""The training stage: one learned simulator per (dataset, model, history, seed).

Windows of ``history + 1 + loss_steps`` frames come from the first ``horizon`` frames of each training
trajectory (the rest is kept for rollouts). Normalisation statistics come from the train split only and are a
pipeline output of their own (:func:`statistics_dataset`, :func:`read_statistics`). Training uses Adam with an
exponential learning-rate decay, gradient clipping and random-walk noise on the input positions; with
``loss_steps`` K > 1 the simulator is unrolled K steps inside the loss, each step's prediction feeding the next.
It validates by rollout over the validation networks, keeps the best checkpoint, and resumes from the last one.
A non-finite loss stops training with a clear message; the checkpoints on disk stay the last good ones.

The baselines are not trained by gradient descent: ``frozen`` has nothing to fit and ``linear_floor`` is solved
by least squares on every training window (:func:`fit_baseline`); both are validated and checkpointed the same way.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch_geometric.data import Batch
from tqdm import tqdm

from densim.config import ConfigError, typed_config
from densim.rollout import TrajectoryGraph, advance, estimated_box, rollout
from densim.simulator import LearnedSimulator, Statistics, affine_velocity, edge_features, velocities

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (for example a non-finite loss)."""


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings (the ``training`` config section)."""

    horizon: int = 20
    steps: int = 300
    batch_size: int = 4
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5
    gradient_clip: float = 1.0
    noise_std: float = 0.0
    loss_steps: int = 1
    residual: bool = True
    validate_every: int = 50
    device: str = "auto"

    def __post_init__(self):
        for key in ("horizon", "steps", "batch_size", "validate_every", "loss_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"training.{key}: must be at least 1")
        if not 0 < self.final_learning_rate <= self.learning_rate:
            raise ConfigError("training.final_learning_rate: must be positive and at most training.learning_rate")


def training_config(section: dict) -> TrainingConfig:
    return typed_config(TrainingConfig, section, "training")


def _residual_velocities(trajectory: TrajectoryGraph, frames: int, residual: bool) -> torch.Tensor:
    positions = trajectory.positions[:, :frames]
    v = velocities(positions)
    if residual:
        v = v - affine_velocity(positions, trajectory.box[:frames, 0], trajectory.centre_x)
    return v


def compute_statistics(trajectories: list[TrajectoryGraph], config: TrainingConfig) -> Statistics:
    """Mean and std of (residual) velocities, accelerations and edge features over the training horizon."""
    v = torch.cat([_residual_velocities(t, config.horizon, config.residual).reshape(-1, 2) for t in trajectories])
    a = torch.cat([(_residual_velocities(t, config.horizon, config.residual).diff(dim=1)).reshape(-1, 2) for t in trajectories])
    e = torch.cat([edge_features(t.positions[:, 0], t.graph.edge_index, t.box[0], t.graph.rest_length) for t in trajectories])
    floor = torch.finfo(torch.float64).tiny
    return Statistics(v.mean(0), v.std(0).clamp_min(floor), a.mean(0), a.std(0).clamp_min(floor), e.mean(0), e.std(0).clamp_min(1e-12))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def statistics_dataset(statistics: Statistics, attrs: dict) -> xr.Dataset:
    """The normalisation statistics as a netCDF-ready dataset (kind ``statistics``)."""
    data_vars = {}
    for name, value in vars(statistics).items():
        dim = "edge_feature" if name.startswith("edge") else "component"
        data_vars[name] = (dim, value.detach().cpu().numpy().astype(np.float64))
    coords = {"component": ["x", "y"], "edge_feature": ["dx", "dy", "length", "inverse_rest_length"]}
    return xr.Dataset(data_vars, coords=coords, attrs={"densim_kind": "statistics", **attrs})


def read_statistics(path) -> Statistics:
    """Statistics written by :func:`statistics_dataset` (a wrong or incomplete file is an error naming it)."""
    from densim.io import read_dataset

    names = [field.name for field in fields(Statistics)]
    ds = read_dataset(path, "statistics", names)
    return Statistics(*(torch.as_tensor(ds[name].values, dtype=torch.float64) for name in names))


def _windows(trajectories: list[TrajectoryGraph], history: int, horizon: int, loss_steps: int = 1) -> list[tuple[int, int]]:
    """(trajectory, last input frame) pairs whose last target frame lies within the horizon."""
    return [(i, t) for i, traj in enumerate(trajectories) for t in range(history, min(horizon, traj.frames) - loss_steps)]


def _initial_states(trajectories, windows, history: int, generator, noise_std: float) -> list[torch.Tensor]:
    """Input frames (N, history + 1, 2) of each window, with random-walk noise when ``noise_std > 0``."""
    states = []
    for i, t in windows:
        state = trajectories[i].positions[:, t - history : t + 1]
        if noise_std > 0:
            # random-walk noise on the inputs; the targets still lead to the true next frames
            steps = noise_std / math.sqrt(history + 1) * torch.randn(state.shape[0], history + 1, 2, generator=generator, dtype=state.dtype)
            state = state + steps.to(state.device).cumsum(dim=1)
        states.append(state)
    return states


def _step_batch(simulator: LearnedSimulator, trajectories, windows, states, offset: int):
    """Batched graph of every window's current state and the normalised targets leading to the true next frame."""
    graphs, targets = [], []
    h = simulator.history
    for (i, t), state in zip(windows, states):
        traj, last = trajectories[i], t + offset
        box_x = traj.box[last - h : last + 2, 0]
        # the box as a rollout would see it: imposed along x, estimated from positions along y
        box_t = estimated_box(traj, state[:, -1], traj.box[last, 0])
        graphs.append(simulator.preprocess(traj.graph, state, box_t, box_x[:-1], traj.centre_x))
        targets.append(simulator.target(torch.cat([state, traj.positions[:, last + 1 : last + 2]], dim=1), box_x, traj.centre_x))
    return Batch.from_data_list(graphs), torch.cat(targets)


def _batch_loss(simulator: LearnedSimulator, trajectories, windows, generator, noise_std: float, loss_steps: int = 1):
    """Mean squared error of normalised accelerations over ``loss_steps`` unrolled steps."""
    states = _initial_states(trajectories, windows, simulator.history, generator, noise_std)
    losses = []
    for offset in range(loss_steps):
        batch, target = _step_batch(simulator, trajectories, windows, states, offset)
        prediction = simulator.network(batch)
        losses.append(torch.mean((prediction - target.to(prediction.dtype)) ** 2))
        if offset + 1 < loss_steps:
            pieces = prediction.split(batch.ptr.diff().tolist())
            states = [advance(simulator, trajectories[i], state, piece, t + offset) for piece, state, (i, t) in zip(pieces, states, windows)]
    return torch.stack(losses).mean()


def rollout_error(simulator: LearnedSimulator, trajectories: list[TrajectoryGraph], steps: int) -> float:
    """Mean positional L2 error (particle diameters) over ``steps`` rollout steps and all trajectories."""
    errors = []
    simulator.eval()
    for traj in trajectories:
        predicted = rollout(simulator, traj, steps)
        truth = traj.positions[:, : predicted.shape[1]]
        errors.append(torch.linalg.norm(predicted - truth, dim=-1)[:, simulator.history + 1 :].mean().item())
    simulator.train()
    return float(np.mean(errors))


def _save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_history(out_dir: Path, history: dict, best: float, config: TrainingConfig) -> None:
    from densim.io import write_json

    write_json({**history, "best_validation_rollout_error": best, "config": asdict(config)}, out_dir / "history.json")


def is_baseline(simulator: LearnedSimulator) -> bool:
    """Whether the simulator's network is fitted without gradient descent (``frozen``, ``linear_floor``)."""
    return getattr(simulator.network, "frozen", False) or hasattr(simulator.network, "fit")


@torch.no_grad()
def fit_baseline(simulator: LearnedSimulator, train_set, validation_set, config: TrainingConfig, out_dir: Path, metadata: dict) -> dict:
    """Fit a baseline in closed form on every training window, validate it, and checkpoint it like a model."""
    device = _device(config.device)
    simulator.to(device)
    train_set = [t.to(device) for t in train_set]
    validation_set = [t.to(device) for t in validation_set]
    if hasattr(simulator.network, "fit"):
        windows = _windows(train_set, simulator.history, config.horizon)
        if not windows:
            raise TrainingError(f"no training windows: horizon {config.horizon} is too short for history {simulator.history}")
        states = _initial_states(train_set, windows, simulator.history, None, 0.0)
        batch, target = _step_batch(simulator, train_set, windows, states, 0)
        simulator.network.fit(batch.x, target)
    error = rollout_error(simulator, validation_set, config.horizon - simulator.history - 1)
    history = {"step": [], "loss": [], "validation_step": [0], "validation_rollout_error": [error]}
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = {"simulator": simulator.state_dict(), "metadata": metadata, "step": 0, "validation_rollout_error": error}
    _save(checkpoint, out_dir / "best.pt")
    _save({**checkpoint, "history": history, "best": error}, out_dir / "last.pt")
    _write_history(out_dir, history, error, config)
    return history


def train(
    simulator: LearnedSimulator,
    train_set: list[TrajectoryGraph],
    validation_set: list[TrajectoryGraph],
    config: TrainingConfig,
    out_dir: Path,
    seed: int,
    metadata: dict,
) -> dict:
    """Train a simulator, writing ``last.pt``, ``best.pt`` and ``history.json`` into ``out_dir``.

    Resumes from ``out_dir/last.pt`` when present; baselines go to :func:`fit_baseline`. Returns the training
    history.
    """
    if is_baseline(simulator):
        return fit_baseline(simulator, train_set, validation_set, config, out_dir, metadata)
    device = _device(config.device)
    simulator.to(device)
    train_set = [t.to(device) for t in train_set]
    validation_set = [t.to(device) for t in validation_set]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(simulator.parameters(), lr=config.learning_rate)
    gamma = (config.final_learning_rate / config.learning_rate) ** (1.0 / config.steps)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)
    history = {"step": [], "loss": [], "validation_step": [], "validation_rollout_error": []}
    best = math.inf
    start = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=False)
        simulator.load_state_dict(state["simulator"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        history, best, start = state["history"], state["best"], state["step"]
        generator.set_state(state["generator"])
        rng = state["rng"]
        log.info("resumed from %s at step %d", last_path, start)
    windows = _windows(train_set, simulator.history, config.horizon, config.loss_steps)
    if not windows:
        raise TrainingError(f"no training windows: horizon {config.horizon} is too short for history "
                            f"{simulator.history} and {config.loss_steps} loss steps")
    validation_steps = config.horizon - simulator.history - 1
    simulator.train()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=metadata.get("name", "train"), mininterval=2.0)
    for step in bar:
        chosen = rng.choice(len(windows), size=min(config.batch_size, len(windows)), replace=False)
        loss = _batch_loss(simulator, train_set, [windows[i] for i in chosen], generator, config.noise_std, config.loss_steps)
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss at step {step}; the last good checkpoint is kept at {last_path}")
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(simulator.parameters(), config.gradient_clip)
        optimiser.step()
        scheduler.step()
        history["step"].append(step + 1)
        history["loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
        if (step + 1) % config.validate_every == 0 or step + 1 == config.steps:
            error = rollout_error(simulator, validation_set, validation_steps) if validation_set else loss.item()
            history["validation_step"].append(step + 1)
            history["validation_rollout_error"].append(error)
            checkpoint = {"simulator": simulator.state_dict(), "metadata": metadata, "step": step + 1, "validation_rollout_error": error}
            if error < best:
                best = error
                _save(checkpoint, best_path)
            _save(
                {**checkpoint, "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(), "history": history,
                 "best": best, "generator": generator.get_state(), "rng": rng},
                last_path,
            )
    _write_history(out_dir, history, best, config)
    return history


def load_simulator(path: str | Path, device: str = "cpu") -> tuple[LearnedSimulator, dict]:
    """Rebuild a simulator from a self-contained checkpoint (model key, hyperparameters, statistics)."""
    from densim.models import build_model

    state = torch.load(path, map_location=device, weights_only=False)
    meta = state["metadata"]
    network = build_model(meta["model"], node_in=2 * meta["history"], edge_in=4, out=2, **meta["hyperparameters"])
    placeholder = Statistics(*(torch.zeros(n) for n in (2, 2, 2, 2, 4, 4)))
    simulator = LearnedSimulator(network, meta["history"], placeholder, residual=TrainingConfig(**meta["training"]).residual)
    simulator.load_state_dict(state["simulator"])
    return simulator, meta


def check_hyperparameters(model: str, hyperparameters: dict) -> None:
    """Build the model once at a tiny size, so a bad key or value fails before any job, naming it."""
    from densim.models import build_model

    try:
        build_model(model, node_in=2, edge_in=4, out=2, **hyperparameters)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"models.{model}: {err}") from None
