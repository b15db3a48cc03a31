"""Figures of the study from the tidy frames of :mod:`densim.tables`: Figs. 2, 3, S3-S5 and the ablation, drawn
with seaborn as the mean over seeds, each model in its style (:data:`densim.tables.MODEL_STYLES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from densim.io import write_figure
from densim.models import BASELINES
from densim.protocols import PROTOCOLS
from densim.tables import (DATASET_ORDER, MODEL_STYLES, at_step, dataset_label, for_display, load_evaluations, model_label, ordered,
                           value_order)

def model_styles(models) -> dict[str, tuple[str, str, object]]:
    """Label, colour and dashes of each model, in legend order; models without a style get a palette colour."""
    models = ordered(models, MODEL_STYLES)
    extra = iter(sns.color_palette("Set2", len(models)).as_hex())
    return {m: MODEL_STYLES[m] if m in MODEL_STYLES else (m, next(extra), "") for m in models}


def model_lines(ax, data: pd.DataFrame, x: str, y: str, styles: dict, **kwargs) -> None:
    """One seaborn line per model (the mean over seeds), in the models' colours and dashes."""
    models = [m for m in styles if m in set(data["model"])]
    sns.lineplot(data=data, x=x, y=y, hue="model", style="model", hue_order=models, style_order=models,
                 palette={m: styles[m][1] for m in models}, dashes={m: styles[m][2] for m in models},
                 legend=False, ax=ax, linewidth=1.4, **kwargs)


def _points(ax, data: pd.DataFrame, x: str, y: str, styles: dict) -> None:
    """Mean over seeds with one-standard-deviation bars per model at each ``x``, the models dodged apart."""
    models = [m for m in styles if m in set(data["model"])]
    sns.pointplot(data=data, x=x, y=y, hue="model", hue_order=models, palette={m: styles[m][1] for m in models},
                  linestyles=[(0, styles[m][2]) if styles[m][2] else "-" for m in models], markersize=4, linewidth=1.4,
                  errorbar="sd", dodge=0.1 * len(models) ** 0.5 if len(models) > 1 else False, native_scale=True, legend=False, ax=ax)


def model_legend(fig, styles: dict) -> None:
    """One legend for every panel, outside them on the right."""
    handles = [Line2D([], [], color=colour, dashes=dashes or (None, None), linewidth=1.8, label=label)
               for label, colour, dashes in styles.values()]
    fig.legend(handles=handles, loc="outside right upper", title="Model", frameon=False)


def _one_history(frame: pd.DataFrame, history: int | None) -> tuple[pd.DataFrame, int]:
    """The rows of one history: ``history``, or the largest in ``frame``."""
    history = int(frame["history"].max()) if history is None else history
    return frame[frame["history"] == history], history


def panel_grid(rows: int, columns: int, width: float = 3.6, height: float = 2.8):
    """A figure and its axes (rows x columns), constrained layout leaving room for the legend."""
    return plt.subplots(rows, columns, figsize=(columns * width + 2.6, rows * height), squeeze=False, layout="constrained")


def plot_rollout_accuracy(frame: pd.DataFrame, parity: pd.DataFrame, history: int | None = None):
    """The study's Fig. 2: per dataset, mean L2 and Poisson R^2 against rollout step, and a parity plot.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`load_evaluations`.
    parity : pandas.DataFrame
        :func:`load_parity` of the same files (their last step).
    history : int, optional
        The history to show; the largest in ``frame`` by default.

    Returns
    -------
    matplotlib.figure.Figure
        Rows datasets; columns mean L2 [σ] (log scale), Poisson R^2 (display rule of :func:`for_display`),
        and predicted against true Poisson ratio of the learned model (not one of :data:`BASELINES`) with the best
        mean R^2 at the last step (all seeds' rollouts pooled; the R^2 quoted is mean ± std over seeds).
    """
    frame, history = _one_history(frame, history)
    styles = model_styles(frame["model"])
    last = at_step(frame, "last")
    datasets = ordered(frame["dataset"], DATASET_ORDER)
    fig, axes = panel_grid(len(datasets), 3)
    shown = for_display(frame)
    for (ax_l2, ax_r2, ax_parity), dataset in zip(axes, datasets):
        model_lines(ax_l2, shown[shown["dataset"] == dataset], "step", "l2", styles, errorbar=None)
        ax_l2.set(yscale="log", xlabel="rollout step", ylabel="mean L2 [σ]")
        model_lines(ax_r2, shown[shown["dataset"] == dataset], "step", "poisson_r2", styles, errorbar=None)
        ax_r2.set(ylim=(-0.03, 1.03), xlabel="rollout step", ylabel="Poisson R² (R² < 0 at 0)")
        protocol = PROTOCOLS[last.loc[last["dataset"] == dataset, "protocol"].iloc[0]]
        best = _best_model(last[last["dataset"] == dataset], protocol.headline)
        points = parity[(parity["dataset"] == dataset) & (parity["model"] == best) & (parity["history"] == history)]
        if protocol.poisson_note:
            ax_r2.text(0.5, 0.5, protocol.poisson_note, transform=ax_r2.transAxes, ha="center", va="center")
        values = last[(last["dataset"] == dataset) & (last["model"] == best)][protocol.headline]
        step = int(points["step"].iloc[0]) if len(points) else int(last["step"].max())
        _parity(ax_parity, points, styles[best], *protocol.parity, protocol.headline_label(values, step))
        for ax in (ax_l2, ax_r2, ax_parity):
            ax.set_title(dataset_label(dataset), loc="left", fontweight="bold")
    model_legend(fig, styles)
    fig.suptitle(f"Rollout accuracy (history h = {history}; mean over seeds)")
    return fig


def _best_model(last: pd.DataFrame, score: str = "poisson_r2") -> str:
    """The learned model (any model if none is learned) with the best mean ``score`` over seeds (the highest Poisson
    R^2, or the lowest arrival error); by the lowest mean L2 where the score is not defined (a single test trajectory,
    or every rollout blown up)."""
    means = last.groupby("model")[[score, "l2"]].mean()
    learned = means.drop(list(BASELINES), errors="ignore")
    candidates = learned if len(learned) else means
    if candidates[score].notna().any():
        return candidates[score].idxmin() if score == "arrival_error" else candidates[score].idxmax()
    return candidates["l2"].idxmin() if candidates["l2"].notna().any() else candidates.index[0]


def _parity(ax, points: pd.DataFrame, style: tuple, quantity: str, symbol: str, score: str) -> None:
    """Predicted (``quantity``) against true (``quantity_true``) values of one model, with the diagonal and a score."""
    label, colour, _ = style
    columns = [f"{quantity}_true", quantity]
    if not np.isfinite(points[columns].to_numpy(dtype=float)).any():
        ax.text(0.5, 0.5, f"{label}: no finite rollout", transform=ax.transAxes, ha="center", va="center")
        return
    sns.scatterplot(data=points, x=columns[0], y=columns[1], color=colour, s=18, alpha=0.7, linewidth=0, ax=ax)
    values = points[columns].to_numpy(dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    pad = 0.05 * (high - low) or 0.05
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", linewidth=0.8, zorder=0)
    ax.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal", xlabel=f"true {symbol}", ylabel=f"predicted {symbol}")
    ax.text(0.96, 0.04, f"{label}\n{score}", transform=ax.transAxes,
            ha="right", va="bottom", fontsize="small", bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.85})


def plot_history(frame: pd.DataFrame):
    """The study's Fig. 3: Poisson R^2 (upper row) and mean L2 (lower row) at the table step against history.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`load_evaluations` of the history ablation.

    Returns
    -------
    matplotlib.figure.Figure
        One column per dataset, one line per model (mean over seeds, bars one standard deviation), with the
        display rule of :func:`for_display` (R^2 < 0 drawn at 0, L2 > 1 left out).
    """
    shown = for_display(at_step(frame))
    styles = model_styles(shown["model"])
    datasets = ordered(shown["dataset"], DATASET_ORDER)
    fig, axes = panel_grid(2, len(datasets), width=3.4, height=3.0)
    for (ax_r2, ax_l2), dataset in zip(axes.T, datasets):
        data = shown[shown["dataset"] == dataset]
        _points(ax_r2, data, "history", "poisson_r2", styles)
        ax_r2.set(ylim=(-0.03, 1.03), xlabel="history h", ylabel="Poisson R² (R² < 0 at 0)")
        ax_r2.set_title(dataset_label(dataset), fontweight="bold")
        _points(ax_l2, data, "history", "l2", styles)
        ax_l2.set(yscale="log", xlabel="history h", ylabel="mean L2 [σ] (L2 > 1 left out)")
        for ax in (ax_r2, ax_l2):
            ax.set_xticks(sorted(shown["history"].unique()))
    model_legend(fig, styles)
    fig.suptitle(f"Accuracy against history at rollout step {', '.join(map(str, sorted(shown['step'].unique())))}")
    return fig


def plot_modes_and_bias(frame: pd.DataFrame, modes: pd.DataFrame, history: int | None = None):
    """The study's Figs. S3-S5: signed Poisson-ratio bias, and the error on slow and fast Laplacian modes.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`load_evaluations`.
    modes : pandas.DataFrame
        :func:`load_mode_energy` of the same files (their table step).
    history : int, optional
        The history to show; the largest in ``frame`` by default.

    Returns
    -------
    matplotlib.figure.Figure
        Rows datasets; columns the mean signed error of the predicted Poisson ratio against rollout step, the mean
        squared error [σ²] on the slow modes (the first ``k`` eigenvectors) and on the fast ones (the rest), and
        the squared error on each slow mode at the table step (mean over seeds).
    """
    frame, history = _one_history(frame, history)
    modes = modes[modes["history"] == history]
    styles = model_styles(frame["model"])
    datasets = ordered(frame["dataset"], DATASET_ORDER)
    fig, axes = panel_grid(len(datasets), 4, width=3.3)
    for (ax_bias, ax_slow, ax_fast, ax_modes), dataset in zip(axes, datasets):
        data = frame[frame["dataset"] == dataset]
        ax_bias.axhline(0, color="0.6", linewidth=0.8)
        model_lines(ax_bias, data, "step", "poisson_bias", styles, errorbar=None)
        ax_bias.set(xlabel="rollout step", ylabel="Poisson bias ⟨ν̂ − ν⟩")
        model_lines(ax_slow, data, "step", "slow_mse", styles, errorbar=None)
        ax_slow.set(yscale="log", xlabel="rollout step", ylabel="slow-mode error [σ²]")
        model_lines(ax_fast, data, "step", "fast_mse", styles, errorbar=None)
        ax_fast.set(yscale="log", xlabel="rollout step", ylabel="fast-mode error [σ²]")
        model_lines(ax_modes, modes[modes["dataset"] == dataset], "mode", "mode_error", styles, errorbar=None)
        ax_modes.set(yscale="log", xlabel="Laplacian mode (slowest first)", ylabel=f"error per mode [σ²], step {int(data['table_step'].iloc[0])}")
        for ax in (ax_bias, ax_slow, ax_fast, ax_modes):
            ax.set_title(dataset_label(dataset), loc="left", fontweight="bold")
    model_legend(fig, styles)
    fig.suptitle(f"Poisson-ratio bias and error by Laplacian mode (history h = {history}; mean over seeds)")
    return fig


def plot_ablation(frame: pd.DataFrame):
    """Mean L2 against rollout step for each value of each ablation factor.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`ablation_frame`.

    Returns
    -------
    matplotlib.figure.Figure
        Rows (dataset, model), columns factors; one line per factor value (mean over seeds, the model's own setting
        in black), log scale, L2 > 1 left out.
    """
    shown = for_display(frame)
    panels = list(shown.groupby(["dataset", "model"]).groups)
    factors = list(dict.fromkeys(shown["factor"]))
    fig, axes = panel_grid(len(panels), len(factors), width=4.0, height=2.9)
    for row, (dataset, model) in zip(axes, panels):
        for ax, factor in zip(row, factors):
            data = shown[(shown["dataset"] == dataset) & (shown["model"] == model) & (shown["factor"] == factor)]
            values = value_order(data["value"])
            own = set(data.loc[data["own"], "value"])
            colours = dict(zip(values, sns.color_palette("viridis", len(values)).as_hex()))
            palette = {v: "black" if v in own else colours[v] for v in values}
            sns.lineplot(data=data, x="step", y="l2", hue="value", hue_order=values, palette=palette, errorbar=None, ax=ax, linewidth=1.4)
            ax.set(yscale="log", xlabel="rollout step", ylabel="mean L2 [σ]", title=f"{dataset_label(dataset)} · {model_label(model)}")
            ax.legend(title=f"{factor} (black: own)", fontsize="small", title_fontsize="small", frameon=False)
    fig.suptitle("Ablation: one factor at a time, the others at the model's own setting")
    return fig


def save_figure(fig, stem: str | Path, attrs: dict) -> list[Path]:
    """Write a figure as ``stem.pdf`` and ``stem.png``, each with its provenance sidecar (:func:`densim.io.write_figure`)."""
    return [write_figure(fig, f"{stem}{suffix}", attrs) for suffix in (".pdf", ".png")]




@dataclass(eq=False)  # told apart by identity: the panel of each
class RolloutExample:
    """One test network rolled out by one model (:func:`rollout_examples`): frames from the last input frame on."""

    dataset: str
    model: str
    network: str  # the trajectory's name, DATASET/NETWORK
    start: int  # the last input frame
    predicted: np.ndarray  # (T, N, 2)
    truth: np.ndarray  # (T, N, 2)
    box: np.ndarray  # (T, 2) the true box of each frame
    bonds: np.ndarray  # (B, 2)
    rest_length: np.ndarray  # (B,)
    inputs: list[str]  # the files it was made from: checkpoint, trajectory, spectra

    def error(self, t: int) -> np.ndarray:
        """Each node's positional error at frame ``t`` of the example [σ]."""
        return np.linalg.norm(self.predicted[t] - self.truth[t], axis=-1)


def rollout_examples(evaluations, spectra_sources: dict[str, str], results: str | Path = "results") -> list[RolloutExample]:
    """For each dataset of ``evaluations`` (the main grid's files), its first test network rolled out up to the table
    step by the learned model with the lowest mean L2 at that step (over seeds) and by the linear floor (where the
    grid has it), each at the first seed and history of the grid. ``spectra_sources``: each dataset whose trajectories
    the test networks come from -> the dataset whose spectra they use (a regime variant's networks)."""
    from densim.evaluation import example_rollout
    from densim.io import evaluation_name, read_evaluation, read_spectra, read_trajectory

    frame = at_step(load_evaluations(evaluations))
    files = {(Path(path).parent.parent.name, Path(path).parent.name, Path(path).name): path for path in evaluations}  # .../{dataset}/seed{seed}/{model}_h{history}.nc
    examples = []
    for dataset in ordered(frame["dataset"].unique(), DATASET_ORDER):
        rows = frame[frame["dataset"] == dataset]
        learned = rows[~rows["model"].isin(BASELINES)]
        if learned.empty:
            continue
        models = [learned.groupby("model")["l2"].mean().idxmin()] + (["linear_floor"] if "linear_floor" in set(rows["model"]) else [])
        for model in models:
            run = rows[rows["model"] == model].sort_values(["seed", "history"]).iloc[0]
            ds = read_evaluation(files[(dataset, f"seed{run['seed']}", evaluation_name(model, run['history']))])
            network = str(ds["trajectory"].values[0])
            member, index = network.split("/")
            paths = {"trajectory": Path(results) / f"trajectories/{member}/{index}.nc",
                     "spectra": Path(results) / f"spectra/{spectra_sources[member]}/{index}.nc"}
            trajectory, spectra = read_trajectory(paths["trajectory"]), read_spectra(paths["spectra"])
            start, steps = int(ds.attrs["start_frame"]), int(ds.attrs["table_step"])
            checkpoint = Path(results) / f"training/{dataset}/{model}/h{run['history']}/seed{run['seed']}/best.pt"
            predicted, truth = example_rollout(checkpoint, trajectory, spectra, start, steps)
            examples.append(RolloutExample(dataset, model, network, start, predicted, truth,
                                           trajectory["box"].values[start:start + len(truth)], trajectory["bonds"].values.astype(int),
                                           trajectory["rest_length"].values,
                                           [str(checkpoint), str(paths["trajectory"]), str(paths["spectra"])]))
    return examples


def magnification(examples: list[RolloutExample]) -> float:
    """A round factor (1, 2 or 5 times a power of ten) by which the largest true displacement from the last input
    frame, over ``examples``, becomes about a third of the mean rest length."""
    largest = max(float(np.abs(e.truth - e.truth[0]).max()) for e in examples) or 1.0
    raw = float(np.mean([e.rest_length.mean() for e in examples])) / 3 / largest
    power = 10.0 ** np.floor(np.log10(raw))
    return max(f for f in (1, 2, 5) if f * power <= raw) * power


def _draw_rollout(ax, example: RolloutExample, t: int, factor: float, strain_norm, error_norm) -> None:
    """The true network (grey) and the predicted one (bonds coloured by strain, nodes by positional error) at frame
    ``t`` of the example, displacements from its first frame magnified ``factor`` times."""
    from matplotlib.collections import LineCollection

    first, i = example.truth[0], example.bonds[:, 0]
    start_vectors = _bond_vectors(example, first, 0)
    for positions, true in ((example.truth[t], True), (example.predicted[t], False)):
        shown = first + factor * (positions - first)
        vectors = _bond_vectors(example, positions, t)
        segments = np.stack([shown[i], shown[i] + start_vectors + factor * (vectors - start_vectors)], axis=1)
        if true:
            ax.add_collection(LineCollection(segments, colors="0.6", linewidths=2.2, alpha=0.45, zorder=1))
            continue
        strain = np.linalg.norm(vectors, axis=-1) / example.rest_length - 1
        ax.add_collection(LineCollection(segments, array=strain, cmap="coolwarm", norm=strain_norm, linewidths=1.0, zorder=2))
        ax.scatter(shown[:, 0], shown[:, 1], c=example.error(t), cmap="magma_r", norm=error_norm, s=9, linewidths=0, zorder=3)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xticks([])
    ax.set_yticks([])
    error = float(example.error(t).mean())
    ax.set_title(f"{dataset_label(example.dataset)}, {model_label(example.model)}\nstep {t}: L2 = {error:.2g} σ", fontsize=9)


def _rollout_norms(examples: list[RolloutExample]):
    """Shared colour scales: bond strain symmetric about 0 (the true strains' 99th percentile), node error from 0
    to the largest error at the examples' last frames."""
    from matplotlib.colors import Normalize, TwoSlopeNorm

    strains = np.concatenate([np.linalg.norm(_bond_vectors(e, e.truth[-1], -1), axis=-1) / e.rest_length - 1 for e in examples])
    limit = float(np.percentile(np.abs(strains), 99)) or 1e-6
    errors = max(float(e.error(-1).max()) for e in examples) or 1e-6
    return TwoSlopeNorm(0.0, -limit, limit), Normalize(0.0, errors)


def _bond_vectors(example: RolloutExample, positions: np.ndarray, t: int) -> np.ndarray:
    """Minimum-image bond vectors of ``positions`` (N, 2) in the true box of the example's frame ``t``."""
    from densim.springs import minimum_image

    return minimum_image(positions[example.bonds[:, 1]] - positions[example.bonds[:, 0]], example.box[t])


def _rollout_panels(examples: list[RolloutExample]):
    """A figure of one row per dataset and one column per model, with the two colour bars."""
    datasets = list(dict.fromkeys(e.dataset for e in examples))
    columns = max(sum(e.dataset == d for e in examples) for d in datasets)
    fig, axes = plt.subplots(len(datasets), columns, figsize=(3.4 * columns + 1.6, 3.2 * len(datasets)), squeeze=False, layout="constrained")
    placed = {}
    for example in examples:
        row = datasets.index(example.dataset)
        column = sum(e.dataset == example.dataset for e in placed)
        placed[example] = axes[row, column]
    for ax in axes.flat:
        if ax not in placed.values():
            ax.set_visible(False)
    strain_norm, error_norm = _rollout_norms(examples)
    for norm, cmap, label in ((strain_norm, "coolwarm", "bond strain r / l0 - 1 (predicted)"), (error_norm, "magma_r", "node position error [σ]")):
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.5, label=label)
    return fig, placed, strain_norm, error_norm


def rollout_figure(examples: list[RolloutExample]):
    """The examples at their last frame (the table step): true networks in grey, predicted ones over them."""
    fig, placed, strain_norm, error_norm = _rollout_panels(examples)
    factor = magnification(examples)
    for example, ax in placed.items():
        _draw_rollout(ax, example, len(example.truth) - 1, factor, strain_norm, error_norm)
    fig.suptitle(f"Rollouts at the table step: true (grey) and predicted; displacements from the last input frame × {factor:g}")
    return fig


def rollout_animation(examples: list[RolloutExample], path: str | Path, attrs: dict, fps: int = 6, frames: int = 40, dpi: int = 60) -> Path:
    """The examples' rollouts frame by frame (at most ``frames`` frames), true against predicted, as a GIF written
    atomically with its provenance sidecar."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    from densim.io import atomic_path

    fig, placed, strain_norm, error_norm = _rollout_panels(examples)
    factor = magnification(examples)
    length = min(len(e.truth) for e in examples)
    shown = np.unique(np.linspace(0, length - 1, min(frames, length)).round().astype(int))

    def draw(t):
        for example, ax in placed.items():
            ax.clear()
            _draw_rollout(ax, example, int(t), factor, strain_norm, error_norm)
        fig.suptitle(f"Rollouts: true (grey) and predicted; displacements from the last input frame × {factor:g}")

    animation = FuncAnimation(fig, draw, frames=shown)
    with atomic_path(path, attrs, suffix=".tmp.gif") as tmp:
        animation.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return Path(path)
