"""The training stage: one simulator per (dataset, model, history, seed).

Windows of ``history + 1 + K`` frames lie where ``training.windows`` puts them in each training trajectory (its
first ``horizon`` frames, the frames before or after the rollout start, or everywhere), K the unrolled loss steps
(``loss_steps``; ``window`` is the whole horizon). Normalisation statistics come from the train split only and are a
pipeline output of their own (:func:`compute_statistics`). Training uses Adam with an exponential learning-rate
decay and gradient clipping on the simulator's own loss (:meth:`densim.simulator.Simulator.loss`: with
K > 1 it is unrolled K steps, each step's prediction feeding the next, with gradients through the window, or
through the last step only with ``pushforward``; noise on the inputs is the simulator's). It validates by rollout over the validation networks, keeps the best checkpoint, and resumes
from the last one, but only from a checkpoint of the same run: every checkpoint carries a description of
everything that shaped it (model, hyperparameters, history, seed, training settings, hashes of the input files)
and its hash (:func:`describe_run`). A non-finite loss stops training with a clear message; the checkpoints on
disk stay the last good ones.

Each model trains with the ``training`` section, its class's own defaults on top (IGNS: the whole-window loss)
and ``training.overrides.<model>`` on top of those; a model variant ``MODEL@KEY=VALUE`` changes a hyperparameter or
a training setting of one model (:func:`densim.experiments.model_setup`).

Baselines (:attr:`densim.simulator.Simulator.closed_form`) are not trained by gradient descent: they are fitted
on every training window, then validated and checkpointed the same way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from densim.config import ConfigError, check_settings, setting, typed_config
from densim.io import read_checkpoint, write_checkpoint, write_json
from densim.models import parameters_digest
from densim.observables import residual_velocities
from densim.provenance import config_hash
from densim.rollout import TrajectoryGraph, rollout_start, rollouts
from densim.simulator import Simulator, Statistics, edge_features

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (for example a non-finite loss)."""


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings (the ``training`` config section; defaults and bounds from the schema)."""

    horizon: int = setting("training.horizon")
    steps: int = setting("training.steps")
    batch_size: int = setting("training.batch_size")
    learning_rate: float = setting("training.learning_rate")
    final_learning_rate: float = setting("training.final_learning_rate")
    gradient_clip: float = setting("training.gradient_clip")
    noise: float = setting("training.noise")
    loss_steps: int | str = setting("training.loss_steps")
    pushforward: bool = setting("training.pushforward")
    residual: bool = setting("training.residual")
    validate_every: int = setting("training.validate_every")
    patience: int | None = setting("training.patience")
    windows: str = setting("training.windows")
    validation_steps: int | None = setting("training.validation_steps")
    device: str = setting("training.device")

    def __post_init__(self):
        check_settings(self, "training")
        if self.final_learning_rate > self.learning_rate:
            raise ConfigError("training.final_learning_rate: must be at most training.learning_rate")

    def unrolled_steps(self, history: int) -> int:
        """Loss steps K at ``history`` (``window``: every step of the horizon after the input frames)."""
        return self.horizon - history - 1 if self.loss_steps == "window" else self.loss_steps

    @property
    def family(self) -> dict:
        """The settings the simulator family takes from this section (see :func:`densim.models.build_simulator`)."""
        return {"residual": self.residual, "noise": self.noise}

    def training_range(self, trajectory: TrajectoryGraph) -> tuple[int, int]:
        """The frames ``first .. stop - 1`` of a training trajectory that its windows and the statistics may use
        (``windows``): from frame 0, except ``after_rollout``, which starts at the trajectory's rollout start."""
        stop = {"start": self.horizon, "before_rollout": max(self.horizon, trajectory.rollout_start + 1)}.get(self.windows, trajectory.frames)
        first = trajectory.rollout_start if self.windows == "after_rollout" else 0
        return min(first, trajectory.frames), min(stop, trajectory.frames)

    def validation_rollout_steps(self, history: int) -> int:
        """Steps of each validation rollout."""
        return self.validation_steps or self.horizon - history - 1


def training_config(section: dict) -> TrainingConfig:
    """The shared settings of a ``training`` section (its ``overrides`` are checked to name models and applied per
    model by :func:`densim.experiments.model_setup`)."""
    from densim.models import MODELS

    unknown = [model for model in section.get("overrides", {}) if model not in MODELS]
    if unknown:
        raise ConfigError(f"training.overrides.{unknown[0]}: unknown model; known models: {', '.join(MODELS)}")
    return typed_config(TrainingConfig, {key: value for key, value in section.items() if key != "overrides"}, "training")


#: The ``training`` keys that shape the normalisation statistics (the rest shapes only the models).
STATISTICS_KEYS = ("horizon", "residual", "windows")


def compute_statistics(trajectories: list[TrajectoryGraph], config: TrainingConfig) -> Statistics:
    """Mean and std of (residual) velocities, accelerations and edge features over the frames training windows come
    from (:meth:`TrainingConfig.training_range`)."""
    per_trajectory = []
    for t in trajectories:
        first, stop = config.training_range(t)
        per_trajectory.append(residual_velocities(t.positions[:, first:stop], t.box[first:stop, 0], t.centre_x, config.residual))
    v = torch.cat([velocity.reshape(-1, 2) for velocity in per_trajectory])
    a = torch.cat([velocity.diff(dim=1).reshape(-1, 2) for velocity in per_trajectory])
    e = torch.cat([edge_features(t.positions[:, 0], t.graph.edge_index, t.box[0], t.graph.rest_length) for t in trajectories])
    floor = torch.finfo(torch.float64).tiny
    return Statistics(v.mean(0), v.std(0).clamp_min(floor), a.mean(0), a.std(0).clamp_min(floor), e.mean(0), e.std(0).clamp_min(1e-12))


def describe_run(model: str, simulator: Simulator, seed: int, config: TrainingConfig, input_hashes: dict[str, str]) -> dict:
    """Everything that shapes a trained simulator, as plain data: what its checkpoint's hash is taken of.

    Parameters
    ----------
    model : str
        Model key.
    simulator : Simulator
        As built (its complete hyperparameters, history and family settings are recorded).
    seed : int
    config : TrainingConfig
    input_hashes : dict
        SHA-256 of every input file (split, statistics, trajectories, spectra), by path.
    """
    return {
        "model": model,
        "history": simulator.history,
        "seed": seed,
        "hyperparameters": simulator.network.hyperparameters,
        "family": config.family,
        "training": asdict(config),
        "inputs": dict(sorted(input_hashes.items())),
    }


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _windows(trajectories: list[TrajectoryGraph], history: int, config: TrainingConfig, loss_steps: int = 1) -> list[tuple[int, int]]:
    """(trajectory, last input frame) pairs whose input and target frames lie within the trajectory's training frames
    (:meth:`TrainingConfig.training_range`)."""
    windows = [(i, t) for i, traj in enumerate(trajectories)
               for first, stop in [config.training_range(traj)] for t in range(first + history, stop - loss_steps)]
    if not windows:
        raise TrainingError(f"no training windows: training.horizon {config.horizon} (windows: {config.windows}) is too short for "
                            f"history {history} and {loss_steps} loss steps")
    return windows


@torch.no_grad()
def one_step_relative_mse(simulator: Simulator, trajectories: list[TrajectoryGraph], start: int, steps: int) -> float:
    """Teacher-forced one-step error: every frame ``start + 1 .. start + steps`` predicted from the true frames before
    it, as a ratio of summed squared errors to those of holding the last frame (the frozen baseline scores 1)."""
    was_training = simulator.training
    simulator.eval()
    error = frozen = 0.0
    for last in range(start, start + steps):
        chosen = [t for t in trajectories if last + 1 < t.frames]
        if not chosen:
            break
        states = simulator.initial_states(chosen, [last] * len(chosen))
        advanced, _ = simulator.step(chosen, states, [last] * len(chosen))
        for t, state in zip(chosen, advanced):
            truth = t.positions[:, last + 1]
            error += float(((simulator.positions(state) - truth) ** 2).sum())
            frozen += float(((t.positions[:, last] - truth) ** 2).sum())
    simulator.train(was_training)
    return error / frozen if frozen > 0 else float("nan")


def validate(simulator: Simulator, trajectories: list[TrajectoryGraph], config: TrainingConfig) -> dict[str, float]:
    """Validation of a simulator from where rollouts start (:func:`rollout_start`): the mean positional L2 error
    (particle diameters) over ``validation_rollout_steps`` rollout steps, and the one-step relative MSE over the
    same frames."""
    start, steps = rollout_start(trajectories, simulator.history), config.validation_rollout_steps(simulator.history)
    simulator.eval()
    predicted = rollouts(simulator, trajectories, steps, start=start)
    simulator.train()
    errors = [torch.linalg.norm(p - t.positions[:, : p.shape[1]], dim=-1)[:, start + 1 :].mean().item()
              for p, t in zip(predicted, trajectories)]
    return {"rollout_error": float(np.mean(errors)), "one_step_relative_mse": one_step_relative_mse(simulator, trajectories, start, steps)}


class _Checkpoints:
    """``best.pt``, ``last.pt`` and ``history.json`` of one run in ``out_dir``; every checkpoint names its run."""

    def __init__(self, out_dir: Path, run: dict, provenance: dict, initial_parameters: str):
        self.out_dir = Path(out_dir)
        self.head = {"run": run, "hash": config_hash(run), "provenance": provenance, "initial_parameters": initial_parameters}
        self.last, self.best = self.out_dir / "last.pt", self.out_dir / "best.pt"
        self.best_checkpoint: dict | None = None  # carried in last.pt, so a resumed run can write best.pt again

    def resumable(self, device) -> dict | None:
        """The last checkpoint if it belongs to this run; otherwise None, with the reason logged."""
        if not self.last.exists():
            return None
        state = read_checkpoint(self.last, device)
        if state["hash"] == self.head["hash"]:
            log.info("resuming from %s at step %d", self.last, state["step"])
            self.best_checkpoint = state.get("best_checkpoint")
            return state
        changed = sorted(key for key in self.head["run"] if state["run"].get(key) != self.head["run"][key])
        log.warning("%s is from another run (hash %s..., now %s...; changed: %s): training from step 0",
                    self.last, state["hash"][:12], self.head["hash"][:12], ", ".join(changed) or "?")
        self.best.unlink(missing_ok=True)
        return None

    def save(self, simulator: Simulator, step: int, scores: dict, is_best: bool, **resume) -> None:
        checkpoint = {**self.head, "simulator": simulator.state_dict(), "step": step, "validation_rollout_error": scores["rollout_error"],
                      "validation_one_step_relative_mse": scores["one_step_relative_mse"]}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if is_best:  # a copy: the state dict holds the live parameters, which training goes on changing
            self.best_checkpoint = {**checkpoint, "simulator": {k: v.detach().clone() for k, v in checkpoint["simulator"].items()}}
            write_checkpoint(checkpoint, self.best)
        write_checkpoint({**checkpoint, **resume, "best_checkpoint": self.best_checkpoint}, self.last)

    def finish(self, history: dict, best: float, config: TrainingConfig, train_set: list[TrajectoryGraph]) -> None:
        """Write ``best.pt`` (again: a workflow manager removes the outputs of a job it was killed in before resuming
        it, and the resumed run may find no better step) and ``history.json``, with the best validation's scores and
        where the training windows lay."""
        if self.best_checkpoint is not None:
            write_checkpoint(self.best_checkpoint, self.best)
        at = int(np.argmin(history["validation_rollout_error"])) if history["validation_rollout_error"] else None
        one_step = history.get("validation_one_step_relative_mse", [])
        ranges = [config.training_range(t) for t in train_set]
        frames = [stop for _, stop in ranges]
        write_json({**history, "best_validation_rollout_error": best,
                    "best_validation_step": None if at is None else history["validation_step"][at],
                    "best_validation_one_step_relative_mse": one_step[at] if at is not None and at < len(one_step) else None,
                    "stopped_at": history["step"][-1] if history["step"] else 0,
                    "training_windows": {"placement": config.windows, "frames": [min(frames, default=0), max(frames, default=0)],
                                         "first_frames": [min((first for first, _ in ranges), default=0), max((first for first, _ in ranges), default=0)]},
                    "config": asdict(config), "hash": self.head["hash"]},
                   self.out_dir / "history.json")


def train(simulator: Simulator, train_set: list[TrajectoryGraph], validation_set: list[TrajectoryGraph], config: TrainingConfig,
          out_dir: Path, run: dict, provenance: dict | None = None) -> dict:
    """Train (or fit) a simulator, writing ``last.pt``, ``best.pt`` and ``history.json`` into ``out_dir``.

    Parameters
    ----------
    simulator : Simulator
        Freshly built (:func:`densim.models.build_simulator`); its initial weights are recorded.
    train_set, validation_set : list of TrajectoryGraph
    config : TrainingConfig
    out_dir : path
    run : dict
        What shaped this run (:func:`describe_run`); ``run["seed"]`` seeds the batches and the noise.
        Training resumes from ``out_dir/last.pt`` only when that checkpoint's run hash is this one's.
    provenance : dict, optional
        Provenance attributes stored with the checkpoints.

    Returns
    -------
    dict
        The training history.
    """
    device = _device(config.device)
    simulator.to(device)
    train_set = [t.to(device) for t in train_set]
    validation_set = [t.to(device) for t in validation_set]
    checkpoints = _Checkpoints(out_dir, run, provenance or {}, parameters_digest(simulator))
    if simulator.closed_form:
        return _fit_closed_form(simulator, train_set, validation_set, config, checkpoints)
    generator = torch.Generator().manual_seed(run["seed"])
    optimiser = torch.optim.Adam(simulator.parameters(), lr=config.learning_rate)
    gamma = (config.final_learning_rate / config.learning_rate) ** (1.0 / config.steps)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)
    history = {"step": [], "loss": [], "validation_step": [], "validation_rollout_error": [], "validation_one_step_relative_mse": []}
    best, start = math.inf, 0
    state = checkpoints.resumable(device)
    if state is not None:
        simulator.load_state_dict(state["simulator"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history, best, start = state["history"], state["best"], state["step"]
    loss_steps = config.unrolled_steps(simulator.history)
    windows = _windows(train_set, simulator.history, config, loss_steps)
    simulator.train()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=run["model"], mininterval=2.0)
    for step in bar:
        if _out_of_patience(history, config.patience):
            log.info("early stop at step %d: no better validation in the last %d validations", step, config.patience)
            break
        chosen = torch.randperm(len(windows), generator=generator)[: config.batch_size].tolist()
        loss = simulator.loss(train_set, [windows[i] for i in chosen], loss_steps, generator, config.pushforward)
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss at step {step}; the last good checkpoint is kept at {checkpoints.last}")
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(simulator.parameters(), config.gradient_clip)
        optimiser.step()
        scheduler.step()
        history["step"].append(step + 1)
        history["loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
        if (step + 1) % config.validate_every == 0 or step + 1 == config.steps:
            scores = validate(simulator, validation_set, config) if validation_set else {"rollout_error": loss.item(), "one_step_relative_mse": math.nan}
            error = scores["rollout_error"]
            history["validation_step"].append(step + 1)
            history["validation_rollout_error"].append(error)
            history["validation_one_step_relative_mse"].append(scores["one_step_relative_mse"])
            is_best = error < best
            best = min(best, error)
            log.info("step %d: validation rollout error %.4g, one-step relative MSE %.4g%s", step + 1, error,
                     scores["one_step_relative_mse"], " (best so far)" if is_best else f" (best {best:.4g})")
            checkpoints.save(simulator, step + 1, scores, is_best, optimiser=optimiser.state_dict(), scheduler=scheduler.state_dict(),
                             history=history, best=best, generator=generator.get_state())
    checkpoints.finish(history, best, config, train_set)
    return history


def _out_of_patience(history: dict, patience: int | None) -> bool:
    """Whether the last ``patience`` validations all failed to improve on the best before them."""
    errors = history["validation_rollout_error"]
    if patience is None or len(errors) <= patience:
        return False
    return min(errors[-patience:]) >= min(errors[:-patience])


def _fit_closed_form(simulator: Simulator, train_set, validation_set, config: TrainingConfig, checkpoints: _Checkpoints) -> dict:
    """Fit a baseline on every training window, validate it, and checkpoint it like a trained model."""
    simulator.fit(train_set, _windows(train_set, simulator.history, config))
    scores = validate(simulator, validation_set, config)
    error = scores["rollout_error"]
    history = {"step": [], "loss": [], "validation_step": [0], "validation_rollout_error": [error],
               "validation_one_step_relative_mse": [scores["one_step_relative_mse"]]}
    checkpoints.save(simulator, 0, scores, True, history=history, best=error)
    checkpoints.finish(history, error, config, train_set)
    return history
