"""Does the study's result hold? Our Tables 1 and 2 beside the study's, and its claims tested one by one.

The study's numbers (``study_tables.csv``, shipped with the package) are its Tables 1 and 2: mean and standard
deviation over its trained models at 50 rollout steps, history 2. :func:`fidelity_report` puts ours beside them,
dataset by dataset, at every step asked for, and decides each claim from the evaluation files:

1. NLSF (norm) beats the spatial simulator on the Poisson ratio R² at 50 steps on every dataset;
2. the gap is largest on NOI-PRU;
3. the linear spectral models (ChebNet, spectral MLP) beat the spatial one only intermittently;
4. with history 1 only NLSF (norm) gives valid rollouts (none blown up, R² ≥ 0);

each as *held*, *did not hold*, or *could not be tested* (a dataset, model or history not run). A difference
counts when the two means are further apart than their seeds' spread (the root sum of squares of the two
standard deviations over seeds); closer than that it is a tie, and with one seed there is no spread to go by.
The speed claim is measured by ``benchmarks/bench_speed.py``, not from evaluation files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from densim.plots import model_legend, model_lines, model_styles, panel_grid
from densim.tables import MODEL_STYLES, dataset_label, format_table, model_label, ordered, steps_table, summary_table

#: The study's four datasets, in its column order.
STUDY_DATASETS = ["node_opt", "comb", "bond_pru_opt", "noi_pru"]
#: The table each metric is in.
TABLES = {"l2": "Table 1: L2 [σ] at the step, lower is better", "poisson_r2": "Table 2: Poisson ratio R² at the step, higher is better"}
#: The step at which the study reports its tables.
STUDY_STEP = 50


def study_tables() -> pd.DataFrame:
    """The study's Tables 1 and 2: columns table (``l2`` or ``poisson_r2``), model, dataset, mean, std."""
    with resources.files("densim").joinpath("study_tables.csv").open() as handle:
        return pd.read_csv(handle, comment="#")


def _study_history(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows at the study's history 2, or all rows when no run has it."""
    return frame[frame["history"] == 2] if (frame["history"] == 2).any() else frame


def _compare(ours: pd.DataFrame, a: str, b: str, dataset: str) -> tuple[str, float, float] | None:
    """Whether model ``a`` beats ``b`` (higher mean) on a dataset: ``"better"``, ``"worse"`` or ``"tie"``, with the
    difference of means and the seeds' spread; None when one of them was not run there."""
    rows = ours[ours["dataset"] == dataset].set_index("model")
    if a not in rows.index or b not in rows.index:
        return None
    difference = float(rows.at[a, "mean"] - rows.at[b, "mean"])
    spread = float(np.hypot(rows.at[a, "std"], rows.at[b, "std"]))
    if not np.isfinite(difference):
        return None
    if not np.isfinite(spread) or abs(difference) <= spread:
        return "tie", difference, spread
    return ("better" if difference > 0 else "worse"), difference, spread


def _verdict(held: bool | None) -> str:
    return {True: "**held**", False: "**did not hold**", None: "**could not be tested**"}[held]


def claims(frame: pd.DataFrame, history_frame: pd.DataFrame | None, step: int = STUDY_STEP) -> list[tuple[str, str, list[str]]]:
    """Each claim: its statement, the verdict and the evidence lines.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`densim.tables.load_evaluations` of the main grid.
    history_frame : pandas.DataFrame, optional
        The same of the history ablation.
    step : int
        The rollout step the claims are about.
    """
    step = min(step, int(frame["step"].max()))  # the last step of rollouts shorter than the study's
    ours = summary_table(_study_history(frame), "poisson_r2", step)
    datasets = [d for d in STUDY_DATASETS if d in set(ours["dataset"])]
    out = []

    results = {d: _compare(ours, "nlsf_norm", "spatial", d) for d in STUDY_DATASETS}
    lines = [f"{dataset_label(d)}: " + ("not run" if r is None else f"NLSF (norm) − spatial = {r[1]:+.3g} (seeds' spread {r[2]:.2g}): {r[0]}")
             for d, r in results.items()]
    tested = [r for r in results.values() if r is not None]
    held = None if len(tested) < len(STUDY_DATASETS) else all(r[0] == "better" for r in tested)
    if tested and any(r[0] != "better" for r in tested):
        held = False  # already false on a dataset that was run
    out.append((f"NLSF (norm) beats spatial on the Poisson ratio R² at step {step} on all four datasets", _verdict(held), lines))

    gaps = {d: r[1] for d, r in results.items() if r is not None}
    if "noi_pru" in gaps and len(gaps) >= 2:
        largest = max(gaps, key=gaps.get)
        held2 = largest == "noi_pru" and results["noi_pru"][0] == "better"
        lines = [f"gap on {dataset_label(d)}: {g:+.3g}" for d, g in gaps.items()] + [f"largest on {dataset_label(largest)}"]
    else:
        held2, lines = None, [f"gaps measured on {', '.join(map(dataset_label, gaps)) or 'no dataset'}: NOI-PRU and one other are needed"]
    out.append(("The gap is largest on NOI-PRU", _verdict(held2), lines))

    linear = [(m, d, _compare(ours, m, "spatial", d)) for m in ("chebnet", "spectral_mlp") for d in datasets]
    linear = [(m, d, r) for m, d, r in linear if r is not None]
    wins = [(m, d) for m, d, r in linear if r[0] == "better"]
    held3 = None if not linear else 0 < len(wins) < len(linear)
    lines = [f"{model_label(m)} − spatial on {dataset_label(d)}: {r[1]:+.3g} (spread {r[2]:.2g}): {r[0]}" for m, d, r in linear]
    lines.append(f"better than spatial beyond the seeds' spread in {len(wins)} of {len(linear)} model-dataset pairs")
    out.append(("Linear spectral models (ChebNet, spectral MLP) beat spatial only intermittently", _verdict(held3), lines))

    held4, lines = None, ["no history-1 runs (experiments.history_ablation)"]
    if history_frame is not None and (history_frame["history"] == 1).any():
        one = summary_table(history_frame[history_frame["history"] == 1], "poisson_r2", min(step, int(history_frame["step"].max())))
        valid = {}
        for model, rows in one.groupby("model"):
            valid[model] = bool((rows["blown_up"] == 0).all() and (rows["mean"] >= 0).all())
        lines = [f"{model_label(m)} at h = 1: {'valid' if v else 'not valid'} "
                 f"({int(r['blown_up'].sum())}/{int(r['rollouts'].sum())} rollouts blown up; mean R² "
                 + ", ".join(f"{dataset_label(d)} {x:.3g}" for d, x in zip(r["dataset"], r["mean"])) + ")"
                 for m, v in valid.items() for r in [one[one["model"] == m]]]
        if "nlsf_norm" in valid and len(valid) > 1:
            held4 = valid["nlsf_norm"] and not any(v for m, v in valid.items() if m != "nlsf_norm")
    out.append(("With history 1, only NLSF (norm) gives valid rollouts", _verdict(held4), lines))
    return out


def side_by_side(frame: pd.DataFrame, metric: str, step: int) -> str:
    """Markdown: per dataset and model, ours (mean ± std over seeds, seeds, blown-up rollouts) and the study's."""
    ours = summary_table(_study_history(frame), metric, step)
    study = study_tables()
    study = study[study["table"] == metric]
    lines = [f"| Dataset | Model | ours (step {step}) | seeds | blown up | study (step {STUDY_STEP}) |", "|:--|:--|--:|--:|--:|--:|"]
    datasets = [d for d in STUDY_DATASETS if d in set(ours["dataset"]) | set(study["dataset"])]
    for dataset in datasets + sorted(set(ours["dataset"]) - set(STUDY_DATASETS)):
        mine = ours[ours["dataset"] == dataset].set_index("model")
        theirs = study[study["dataset"] == dataset].set_index("model")
        for model in ordered([*mine.index, *theirs.index], MODEL_STYLES):
            cell = "not run"
            if model in mine.index:
                row = mine.loc[model]
                cell = f"{row['mean']:.3g}" + ("" if np.isnan(row["std"]) else f" ± {row['std']:.2g}")
            seeds = str(int(mine.at[model, "seeds"])) if model in mine.index else ""
            blown = f"{int(mine.at[model, 'blown_up'])}/{int(mine.at[model, 'rollouts'])}" if model in mine.index else ""
            reference = f"{theirs.at[model, 'mean']:.3g} ± {theirs.at[model, 'std']:.2g}" if model in theirs.index else "–"
            lines.append(f"| {dataset_label(dataset)} | {model_label(model)} | {cell} | {seeds} | {blown} | {reference} |")
    return "\n".join(lines)


def fidelity_report(frame: pd.DataFrame, history_frame: pd.DataFrame | None, steps: list[int], difficulty: str = "",
                    training: str = "", relative_mse_steps=()) -> str:
    """The whole ``fidelity.md``: the tables beside the study's at each step, then the claims with their evidence.

    Parameters
    ----------
    frame, history_frame : pandas.DataFrame
        :func:`densim.tables.load_evaluations` of the main grid and of the history ablation (or None).
    steps : list of int
        Rollout steps of the tables (the claims are decided at :data:`STUDY_STEP`).
    difficulty, training : str
        Markdown of the datasets' difficulty and of the training curves' end, included as evidence.
    relative_mse_steps : list of int
        Steps of the relative MSE table (each model's rollout MSE over the frozen baseline's; the study has none).
    """
    seeds = int(frame.groupby(["dataset", "model", "history"])["seed"].nunique().min())
    rollouts = int(frame.groupby(["dataset", "model", "history", "seed"])["rollouts"].first().min())
    parts = ["# Does the study's result hold?", "",
             f"Our run: {frame['dataset'].nunique()} datasets, {frame['model'].nunique()} models, at least {seeds} seeds and "
             f"{rollouts} test trajectories per evaluation. The study: 4 trained models per dataset (9 for COMB and NOI-PRU), "
             "tables at 50 steps, history 2. A difference counts when the means are further apart than the seeds' spread.", ""]
    parts += ["## Claims", ""]
    for statement, verdict, lines in claims(frame, history_frame):
        parts += [f"- {statement}: {verdict}", *[f"  - {line}" for line in lines]]
    parts += ["- One simulator step replaces 100–500 MD steps, at equal accuracy: measured by `benchmarks/bench_speed.py` "
              "(results/tables/speed.md), not from evaluation files.", ""]
    for step in steps:
        for metric, title in TABLES.items():
            parts += [f"## {title.replace('the step', f'step {step}')}", "", side_by_side(frame, metric, step), ""]
    reached = steps_table(frame, "relative_mse", relative_mse_steps) if relative_mse_steps else frame.iloc[:0]
    if len(reached):
        parts += [f"## Relative MSE (against frozen) at steps {', '.join(map(str, sorted(reached['step'].unique())))}, lower is better",
                  "", format_table(reached, "lower", by_step=True), ""]
    if difficulty:
        parts += ["## Difficulty of the datasets", "", difficulty, ""]
    if training:
        parts += ["## Training curves", "", training, ""]
    return "\n".join(parts)


def training_summary(histories: dict[str, dict]) -> str:
    """Markdown: per run, the step of its best validation rollout error and whether the curve was still falling
    (best in the last fifth of training).

    Parameters
    ----------
    histories : dict
        Run name -> its ``history.json`` (validation_step, validation_rollout_error).
    """
    lines = ["| run | validations | best at step | of | still falling at the end |", "|:--|--:|--:|--:|:--|"]
    for name, history in sorted(histories.items()):
        steps, errors = history.get("validation_step", []), history.get("validation_rollout_error", [])
        if len(steps) < 2:
            continue
        best = steps[int(np.nanargmin(errors))]
        lines.append(f"| {name} | {len(steps)} | {best} | {steps[-1]} | {'yes' if best > 0.8 * steps[-1] else 'no'} |")
    return "\n".join(lines)


def training_curves(histories: dict[str, dict]) -> pd.DataFrame:
    """Tidy validation curves: run name ``results/training/{dataset}/{model}/h{history}/seed{seed}`` -> its
    ``history.json``; columns dataset, model, history, seed, step, validation_rollout_error."""
    rows = []
    for name, history in histories.items():
        dataset, model, h, seed = Path(name).parts[-4:]
        for step, error in zip(history.get("validation_step", []), history.get("validation_rollout_error", [])):
            rows.append({"dataset": dataset, "model": model, "history": int(h.removeprefix("h")), "seed": int(seed.removeprefix("seed")),
                         "step": step, "validation_rollout_error": error})
    return pd.DataFrame(rows)


def plot_training_curves(curves: pd.DataFrame):
    """Validation rollout error against optimiser step, one panel per dataset and history, mean and spread over
    seeds per model (log scale): whether validation had stopped improving when training ended."""
    learned = curves[curves.groupby(["dataset", "model", "history", "seed"])["step"].transform("size") > 1]
    panels = list(learned.groupby(["dataset", "history"]).groups) or [("", 0)]
    styles = model_styles(learned["model"].unique())
    columns = min(3, len(panels))
    fig, axes = panel_grid(-(-len(panels) // columns), columns)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax, (dataset, history) in zip(axes.flat, panels):
        data = learned[(learned["dataset"] == dataset) & (learned["history"] == history)]
        if not data.empty:
            model_lines(ax, data, "step", "validation_rollout_error", styles, errorbar="sd")
        ax.set(yscale="log", xlabel="optimiser step", ylabel="validation rollout error [σ]", title=f"{dataset_label(dataset)} · h = {history}")
    model_legend(fig, styles)
    return fig
