"""The regime study: where learned simulators beat the closed-form linear floor, and what that depends on.

Regime variants of a generated dataset (``variant_of``) share its networks and differ in how their compressions
are sampled and scored: the frame spacing (in units of ``t0 = sqrt(m / k)``), where the rollout window lies relative
to the start-up transient (``trajectories.rollout_start``) and where training windows lie (``training.windows``).
:func:`regime_table` reduces their evaluation files, training histories and trajectory summary to one row per
(dataset, model): the relative MSE (against ``frozen``) at a few rollout steps and the Poisson R^2 at the table
step, as mean and standard deviation over seeds, beside each dataset's learnability (local predictability R^2,
frames per fastest vibration period, the network oracle's Poisson R^2) and each model's one-step relative MSE on
the validation split. :func:`beats` decides, seed by seed against the linear floor of the same split, whether a model
is better beyond the seeds' spread; :func:`verdicts` says it in words, and :func:`plot_regime` draws it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from densim.models import BASELINES
from densim.protocols import PROTOCOLS
from densim.plots import model_styles
from densim.tables import KEYS, dataset_label, model_label, ordered

#: Rollout steps at which the study reports the relative MSE.
STEPS = (1, 10, 50)
#: The learnability columns of a dataset, from the trajectory summary.
LEARNABILITY = ("local_predictability_r2", "fastest_period_frames", "linear_floor_r2")
#: The reference every learned model is compared with, seed by seed.
FLOOR = "linear_floor"
SPATIAL = "spatial"
#: The extrapolation every simulator gets for free: what a learned model must beat to have learned anything.
INERTIAL = "constant_velocity"


def load_histories(paths) -> pd.DataFrame:
    """The best validation of training histories ``results/training/{dataset}/{model}/h{history}/seed{seed}/history.json``.

    Returns
    -------
    pandas.DataFrame
        Columns dataset, model, history, seed, one_step_validation (the one-step relative MSE on the validation split
        at the best validation; NaN in older histories), best_step, stopped_at and windows (training window placement).
    """
    rows = []
    for path in map(Path, paths):
        history = json.loads(path.read_text())
        seed, h, model, dataset = path.parent.name, path.parent.parent.name, path.parents[2].name, path.parents[3].name
        rows.append({"dataset": dataset, "model": model, "history": int(h.removeprefix("h")), "seed": int(seed.removeprefix("seed")),
                     "one_step_validation": history.get("best_validation_one_step_relative_mse") or np.nan,
                     "best_step": history.get("best_validation_step"), "stopped_at": history.get("stopped_at"),
                     "windows": history.get("training_windows", {}).get("placement", "start")})
    return pd.DataFrame(rows)


def per_seed(evaluations: pd.DataFrame, steps=STEPS) -> pd.DataFrame:
    """One row per (dataset, model, history, seed): relative MSE at ``steps`` (``relative_mse_{s}``, NaN past the
    rollout), Poisson R^2 and the network oracle's at each file's table step, and where the rollout window lies."""
    table = evaluations[evaluations["step"] == evaluations["table_step"]].set_index(KEYS)
    columns = ["protocol", "table_step", "poisson_r2", "oracle_poisson_r2", "frame_time", "start_frame", "start_time", "table_strain",
               "rollout_start_frame"]
    out = table[columns].copy()
    for step in steps:
        at = evaluations[evaluations["step"] == step].set_index(KEYS)["relative_mse"]
        out[f"relative_mse_{step}"] = at.reindex(out.index)
    return out.reset_index()


def beats(seeds: pd.DataFrame, metric: str, lower_is_better: bool = True, reference: str = FLOOR) -> pd.DataFrame:
    """Whether each model beats ``reference`` (the linear floor) at ``metric`` beyond the seeds' spread.

    The difference ``d = model - reference`` is taken seed by seed (the same split and test trajectories); a model
    beats the reference when ``mean(d) + std(d) < 0`` and trails it when ``mean(d) - std(d) > 0`` (for a metric where
    higher is better, ``-d``), with ``std`` the sample standard deviation over seeds (0 for one seed).

    Returns
    -------
    pandas.DataFrame
        Columns dataset, model, history, ``gap`` (mean of d), ``gap_std``, ``beats`` and ``trails`` (bool).
    """
    floor = seeds[seeds["model"] == reference].set_index(["dataset", "history", "seed"])[metric]
    rows = []
    for (dataset, model, history), group in seeds[seeds["model"] != reference].groupby(["dataset", "model", "history"]):
        d = group.set_index("seed")[metric].to_numpy() - floor.reindex([(dataset, history, s) for s in group["seed"]]).to_numpy()
        d = d if lower_is_better else -d
        d = d[np.isfinite(d)]
        mean, std = (float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0) if len(d) else (np.nan, np.nan)
        rows.append({"dataset": dataset, "model": model, "history": history, "gap": mean if lower_is_better else -mean, "gap_std": std,
                     "beats": bool(len(d) and mean + std < 0), "trails": bool(len(d) and mean - std > 0)})
    return pd.DataFrame(rows)


def regime_table(evaluations: pd.DataFrame, histories: pd.DataFrame, summary: pd.DataFrame, regimes: dict[str, dict],
                 steps=STEPS) -> pd.DataFrame:
    """One row per (dataset, model, history): the regime, each metric's mean and std over seeds, whether it beats the
    linear floor (:func:`beats`), and the dataset's learnability.

    Parameters
    ----------
    evaluations : pandas.DataFrame
        :func:`densim.tables.load_evaluations` of every run of the study.
    histories : pandas.DataFrame
        :func:`load_histories` of the same runs.
    summary : pandas.DataFrame
        The trajectory summary (``results/trajectories/summary.csv``), one row per dataset.
    regimes : dict
        Dataset -> ``{"networks": the generated dataset it shares networks with}``.
    """
    seeds = per_seed(evaluations, steps).merge(histories, on=KEYS, how="left")
    # the study's questions are about the Poisson ratio: the datasets of protocols that have one
    seeds = seeds[seeds["protocol"].map(lambda name: PROTOCOLS[name].poisson_note is None)]
    metrics = [f"relative_mse_{step}" for step in steps] + ["poisson_r2", "one_step_validation"]
    grouped = seeds.groupby(["dataset", "model", "history"])
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}".replace("_mean", "") for metric, stat in table.columns]
    first = grouped[["frame_time", "start_frame", "start_time", "table_step", "table_strain", "windows", "rollout_start_frame"]].first()
    table = first.join(table).join(grouped.size().rename("seeds")).reset_index()
    # the oracle scores each seed's test split, the same for every model: its mean over the dataset's seeds
    oracle = seeds.groupby(["dataset", "seed"])["oracle_poisson_r2"].first().groupby("dataset").mean()
    table["oracle_poisson_r2"] = table["dataset"].map(oracle)
    for metric, lower in [(f"relative_mse_{step}", True) for step in steps] + [("poisson_r2", False)]:
        verdict = beats(seeds, metric, lower).rename(columns={"gap": f"{metric}_gap", "gap_std": f"{metric}_gap_std", "beats": f"beats_floor_{metric}"})
        table = table.merge(verdict.drop(columns="trails"), on=["dataset", "model", "history"], how="left")
    last = f"relative_mse_{steps[-1]}"
    versus = beats(seeds, last, reference=SPATIAL)[["dataset", "model", "history", "beats", "trails"]]
    table = table.merge(versus.rename(columns={"beats": f"beats_spatial_{last}", "trails": f"trails_spatial_{last}"}),
                        on=["dataset", "model", "history"], how="left")
    if INERTIAL in set(seeds["model"]):
        for step in steps:
            metric = f"relative_mse_{step}"
            inertial = beats(seeds, metric, reference=INERTIAL)[["dataset", "model", "history", "beats"]]
            table = table.merge(inertial.rename(columns={"beats": f"beats_inertial_{metric}"}), on=["dataset", "model", "history"], how="left")
    table["networks"] = table["dataset"].map(lambda d: regimes.get(d, {}).get("networks", d))
    table["window"] = np.where(table["rollout_start_frame"] > 0, "after transient", "inside transient")
    learnability = summary.set_index("dataset").reindex(columns=list(LEARNABILITY))
    table = table.join(learnability, on="dataset")
    table["table_strain"] = table["table_strain"].abs()
    lead = ["networks", "dataset", "frame_time", "window", "windows", "model", "history", "seeds"]
    return table[lead + [c for c in table.columns if c not in lead]].sort_values(["networks", "window", "windows", "frame_time", "model"]).reset_index(drop=True)


def _winners(learned: pd.DataFrame, column: str) -> str:
    """The labels of the models whose ``column`` verdict is true, comma-separated ('' for none)."""
    return ", ".join(model_label(m) for m in learned.loc[learned[column].fillna(False).astype(bool), "model"])


def verdicts(table: pd.DataFrame, steps=STEPS, challenger: str = "nlsf_norm") -> list[str]:
    """The study's questions answered from :func:`regime_table`, one sentence per regime.

    For every dataset: which learned models beat the linear floor beyond the seeds' spread at each step of ``steps``
    and in Poisson R^2, whether ``challenger`` (NLSF (norm)) beats spatial at the last step beyond the seeds'
    spread, trails it, or ties it, and (where the study has it) which beat the constant-velocity extrapolation.
    """
    lines = []
    for dataset, rows in table.groupby("dataset", sort=False):
        learned = rows[~rows["model"].isin(BASELINES)]
        first = rows.iloc[0]
        parts = [f"step {step}: {_winners(learned, f'beats_floor_relative_mse_{step}') or 'none'}" for step in steps]
        r2 = _winners(learned, "beats_floor_poisson_r2")
        positive = [model_label(m) for m in learned.loc[learned["poisson_r2"] > 0, "model"]]
        last = f"relative_mse_{steps[-1]}"
        pair = rows.set_index("model")
        versus = ""
        if challenger in pair.index and SPATIAL in pair.index:
            row = pair.loc[challenger]
            word = "beats" if row[f"beats_spatial_{last}"] == True else "trails" if row[f"trails_spatial_{last}"] == True else "ties"  # noqa: E712 (NaN where unknown)
            spread = "within" if word == "ties" else "beyond"
            versus = (f"; {model_label(challenger)} {word} {model_label(SPATIAL)} at step {steps[-1]} {spread} the seeds' spread"
                      f" ({row[last]:.3g} against {pair.loc[SPATIAL, last]:.3g})")
        if f"beats_inertial_{last}" in rows:
            inertial = [f"step {step}: {_winners(learned, f'beats_inertial_relative_mse_{step}') or 'none'}" for step in steps]
            versus += f"; beat constant velocity (beyond the seeds' spread) at {'; '.join(inertial)}"
        lines.append(f"{dataset_label(dataset)} (a frame every {first['frame_time']:g} t0, rollouts {first['window']}, training windows {first['windows']}): "
                     f"beat the linear floor in relative MSE at {'; '.join(parts)}; in Poisson R^2: {r2 or 'none'} "
                     f"(positive R^2: {', '.join(positive) or 'none'}; the network oracle scores {first['oracle_poisson_r2']:.2f}){versus}.")
    return lines


def format_regime(table: pd.DataFrame, steps=STEPS) -> str:
    """The regime table as Markdown: mean ± std over seeds, a star where a model beats the linear floor."""
    def cell(row, metric, verdict=None):
        mean, std = row[metric], row.get(f"{metric}_std", np.nan)
        text = "" if not np.isfinite(mean) else f"{mean:.3g}" + (f" ± {std:.2g}" if np.isfinite(std) else "")
        return text + (" *" if verdict and row.get(verdict) == True else "")  # noqa: E712 (NaN for the baselines)

    rows = []
    for _, row in table.iterrows():
        rows.append({
            "dataset": dataset_label(row["dataset"]), "frame [t0]": f"{row['frame_time']:g}", "rollout window": row["window"],
            "training windows": row["windows"], "model": model_label(row["model"]),
            **{f"rel. MSE @{s}": cell(row, f"relative_mse_{s}", f"beats_floor_relative_mse_{s}") for s in steps},
            "Poisson R² @table": cell(row, "poisson_r2", "beats_floor_poisson_r2"),
            "table step": int(row["table_step"]), "oracle R²": f"{row['oracle_poisson_r2']:.2f}", "|strain| @table": f"{row['table_strain']:.2g}",
            "1-step val. rel. MSE": cell(row, "one_step_validation"),
            "local pred. R²": f"{row['local_predictability_r2']:.2f}", "frames / fastest period": f"{row['fastest_period_frames']:.2f}",
        })
    return pd.DataFrame(rows).to_markdown(index=False)


def plot_regime(table: pd.DataFrame, steps=STEPS):
    """Relative MSE at ``steps`` and Poisson R^2 at the table step against the frame spacing.

    One row of panels per network source (generator); lines join the datasets whose rollouts start after the
    transient (training windows everywhere), hollow markers are the datasets inside the transient (squares: windows
    everywhere, triangles: windows at the start). The network oracle's Poisson R^2 is dotted after the transient and
    a cross inside it. Bars are one standard deviation over seeds; the relative MSE is on a log scale (frozen = 1),
    R^2 below -1 is drawn at -1.
    """
    import matplotlib.pyplot as plt

    sources = ordered(table["networks"], ["noi_pru", "bond_pru_opt", "node_opt"])
    metrics = [(f"relative_mse_{s}", f"relative MSE at step {s}") for s in steps] + [("poisson_r2", "Poisson R² at the table step")]
    styles = model_styles(table["model"].unique())
    fig, axes = plt.subplots(len(sources), len(metrics), figsize=(3.4 * len(metrics), 2.9 * len(sources)), squeeze=False, constrained_layout=True)
    for row, source in zip(axes, sources):
        data = table[table["networks"] == source]
        for ax, (metric, title) in zip(row, metrics):
            for model, (label, colour, _) in styles.items():
                rows = data[data["model"] == model]
                after = rows[rows["window"] == "after transient"].sort_values("frame_time")
                y = after[metric].clip(lower=-1) if metric == "poisson_r2" else after[metric]
                ax.errorbar(after["frame_time"], y, yerr=after[f"{metric}_std"], color=colour, marker="o", ms=4, label=label, capsize=2, lw=1.2)
                for windows, shape in (("everywhere", "s"), ("start", "^")):
                    inside = rows[(rows["window"] == "inside transient") & (rows["windows"] == windows)]
                    y = inside[metric].clip(lower=-1) if metric == "poisson_r2" else inside[metric]
                    ax.errorbar(inside["frame_time"] * 1.08, y, yerr=inside[f"{metric}_std"], color=colour, marker=shape, mfc="none", ls="none", capsize=2)
            if metric == "poisson_r2":
                after = data[data["window"] == "after transient"].groupby("frame_time")["oracle_poisson_r2"].mean()
                ax.plot(after.index, after.values, color="0.5", ls=":", marker=".", label="network oracle")
                inside = data[data["window"] == "inside transient"].groupby("frame_time")["oracle_poisson_r2"].mean()
                ax.plot(inside.index * 1.08, inside.clip(lower=-1).values, color="0.5", marker="x", ls="none")
                ax.axhline(0, color="0.7", lw=0.8)
                ax.set_ylim(-1.05, 1.05)
            elif (data[metric] > 0).any():
                ax.set_yscale("log")
            ax.set_xscale("log", base=2)
            ax.set_xlim(table["frame_time"].min() / 1.3, table["frame_time"].max() * 1.3)
            ax.set_xlabel("frame spacing [t0]")
            ax.set_title(f"{dataset_label(source)}: {title}", fontsize=9)
    handles, labels = axes[0, -1].get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="0.3", marker="s", mfc="none", ls="none"), Line2D([], [], color="0.3", marker="^", mfc="none", ls="none")]
    labels += ["inside transient, windows everywhere", "inside transient, windows at the start"]
    handles.append(Line2D([], [], color="0.5", marker="x", ls="none"))
    labels.append("network oracle, inside transient")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    return fig
