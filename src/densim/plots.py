"""Figures of the study from the tidy frames of :mod:`densim.tables`: Figs. 2, 3, S3-S5 and the ablation, drawn
with seaborn as the mean over seeds, each model in its style (:data:`densim.tables.MODEL_STYLES`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from densim.io import write_figure
from densim.models import BASELINES
from densim.protocols import PROTOCOLS
from densim.tables import DATASET_ORDER, MODEL_STYLES, at_step, dataset_label, for_display, model_label, ordered, value_order

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


