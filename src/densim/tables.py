"""Tables of the study from evaluation files: tidy frames, Tables 1 and 2, the difficulty and ablation tables.

Evaluation files (:mod:`densim.evaluation`) hold metrics per test trajectory and rollout step. This module
reduces them to tidy frames, one row per (dataset, model, history, seed, step), with means over the finite
rollouts beside the count of blown-up ones; tables take mean and standard deviation over seeds (``ddof=1``) and
are formatted as Markdown or LaTeX. Tables keep raw numbers; figures (:mod:`densim.plots`) follow the study's
display rule (:func:`for_display`): a Poisson :math:`R^2` below 0 is drawn at 0 and a mean :math:`L_2` above 1 is
left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from densim.io import read_evaluation
from densim.models import ORACLES
from densim.observables import DIFFICULTY_DESCRIPTIONS
from densim.protocols import PROTOCOLS

#: Display label, colour and dashes of each registered model: black for the spatial model, blues for the linear
#: spectral models, reds for the nonlinear spectral ones, dashed for their spatio-spectral variants, green for the
#: port-Hamiltonian ones (dashed: time-invariant), purple for GraphCON, grey dotted for the baselines. The order is the order of legends
#: and table rows.
MODEL_STYLES = {
    "spatial": ("Spatial", "#000000", ""),
    "chebnet": ("ChebNet", "#1f5fa8", ""),
    "spectral_mlp": ("Spectral MLP", "#5fb3e6", ""),
    "nlsf": ("NLSF", "#f08c1c", ""),
    "nlsf_norm": ("NLSF (norm)", "#c9182b", ""),
    "s2_chebnet": ("Spatio-spectral (ChebNet)", "#1f5fa8", (4, 2)),
    "s2_mlp": ("Spatio-spectral (MLP)", "#5fb3e6", (4, 2)),
    "s2_nlsf": ("Spatio-spectral (NLSF)", "#f08c1c", (4, 2)),
    "s2_nlsf_norm": ("Spatio-spectral (NLSF, norm)", "#c9182b", (4, 2)),
    "igns": ("IGNS", "#2a9d4b", ""),
    "igns_ti": ("IGNS-ti", "#2a9d4b", (4, 2)),
    "graphcon": ("GraphCON", "#8e44ad", ""),
    "frozen": ("Frozen (baseline)", "#8c8c8c", (1, 1.5)),
    "constant_velocity": ("Constant velocity (baseline)", "#b07d2b", (1, 1.5)),
    "linear_floor": ("Linear floor (baseline)", "#4d4d4d", (1, 1.5)),
    "linear_dynamics": ("Linear dynamics (physics baseline)", "#3b7d8c", (1, 1.5)),
    "thermal_twin": ("Thermal twin (noise floor)", "#9e9e9e", (3, 1, 1, 1)),
}
#: Column order of tables and row order of figures (the study's Table 1); other datasets follow, sorted.
DATASET_ORDER = ("node_opt", "comb", "bond_pru_opt", "noi_pru")
#: The display rule of the study's Fig. 3: R^2 below this is drawn at it, mean L2 above that is left out.
R2_FLOOR = 0.0
L2_SHOWN_UP_TO = 1.0
#: Headers of the difficulty table (columns of the trajectory summary, :data:`DIFFICULTY_DESCRIPTIONS`).
DIFFICULTY_LABELS = {
    "linear_floor_r2": "linear-floor R²",
    "affine_acceleration_share": "affine share of acceleration",
    "acceleration_over_velocity": "acceleration / velocity",
    "noise_over_signal": "noise / signal",
    "local_predictability_r2": "local-predictability R²",
    "fastest_period_frames": "fastest period (frames)",
    "oracle_poisson_r2": "network-oracle Poisson R² (table step)",
}
#: The attributes naming an evaluation file, the leading columns of every tidy frame.
KEYS = ["dataset", "model", "history", "seed"]
#: Where an evaluation's rollout window lies (attributes of evaluation files; NaN in older ones).
WINDOW_ATTRS = ("frame_time", "start_time", "start_strain", "table_strain", "rollout_start_frame")


def finite_mean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over the finite entries along ``axis``; NaN where there are none (without a warning).

    Parameters
    ----------
    values : ndarray
    axis : int

    Returns
    -------
    ndarray
        ``values`` reduced along ``axis``.

    Examples
    --------
    >>> finite_mean(np.array([[1.0, np.nan], [3.0, np.nan]]))
    array([ 2., nan])
    """
    finite = np.isfinite(values)
    count = finite.sum(axis)
    total = np.where(finite, values, 0.0).sum(axis)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def _keys(ds) -> dict:
    """Dataset, model, history and seed of an evaluation file."""
    return {key: ds.attrs[key] if key in ("dataset", "model") else int(ds.attrs[key]) for key in KEYS}


def evaluation_rows(ds) -> pd.DataFrame:
    """Across-trajectory metrics of one evaluation Dataset, one row per step.

    Means are over the rollouts finite at each step (:func:`finite_mean`); the file's own across-trajectory
    metrics (relative_mse, poisson_r2, poisson_bias, blown_up_count) are taken as they are. ``slow_mse`` and
    ``fast_mse`` split the mean squared error [σ²] into its parts on and off the slow (first ``k``) Laplacian
    modes (``mse * slow_share`` and ``mse * (1 - slow_share)``).

    Parameters
    ----------
    ds : xarray.Dataset
        An evaluation file (:func:`densim.io.read_evaluation`).

    Returns
    -------
    pandas.DataFrame
        Columns dataset, model, history, seed, protocol, step, table_step, rollouts (test trajectories), l2, rms,
        slow_share, slow_mse, fast_mse, relative_mse, poisson_r2, poisson_bias, blown_up_count, and the impact
        metrics of the whole rollout arrival_error and arrival_bias (the same at every step; NaN for compressions),
        the network oracle's Poisson R^2 (oracle_poisson_r2; NaN in older files), the trained model's one-step
        relative MSE on the validation split at its best checkpoint (one_step_validation), and where the rollout window lies
        (start_frame and :data:`WINDOW_ATTRS`).
    """
    per = {name: ds[name].transpose("trajectory", "step").values for name in ("l2", "rms", "mse", "slow_share")}
    means = {name: finite_mean(per[name]) for name in ("l2", "rms", "slow_share")}
    means["slow_mse"] = finite_mean(per["mse"] * per["slow_share"])
    means["fast_mse"] = finite_mean(per["mse"] * (1.0 - per["slow_share"]))
    across = {name: ds[name].values for name in ("relative_mse", "poisson_r2", "poisson_bias", "blown_up_count")}
    arrival = {name: float(ds[name]) if name in ds else np.nan for name in ("arrival_error", "arrival_bias")}
    oracle = ds["oracle_poisson_r2"].values if "oracle_poisson_r2" in ds else np.nan
    one_step = float(ds.attrs.get("validation_one_step_relative_mse", np.nan))
    window = {name: float(ds.attrs.get(name, np.nan)) for name in WINDOW_ATTRS}
    return pd.DataFrame({**_keys(ds), "protocol": ds.attrs.get("protocol", "compression"), "step": ds["step"].values,
                         "table_step": int(ds.attrs["table_step"]), "rollouts": ds.sizes["trajectory"], **means, **across, **arrival,
                         "oracle_poisson_r2": oracle, "one_step_validation": one_step, "start_frame": int(ds.attrs.get("start_frame", -1)),
                         **window})


def load_evaluations(paths) -> pd.DataFrame:
    """Tidy across-trajectory metrics of evaluation files (:func:`evaluation_rows` of each, stacked).

    Parameters
    ----------
    paths : iterable of path
        Evaluation files; a missing or foreign one is a :class:`densim.io.DensimFileError` naming it.

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, model, history, seed, step).
    """
    paths = list(paths)
    if not paths:
        raise ValueError("no evaluation files given")
    return pd.concat([evaluation_rows(read_evaluation(path)) for path in paths], ignore_index=True)


def load_parity(paths, step: int | None = None) -> pd.DataFrame:
    """Predicted and true Poisson ratio of every test rollout at one step (the parity plot's points).

    Parameters
    ----------
    paths : iterable of path
        Evaluation files.
    step : int, optional
        Rollout step; each file's last step by default.

    Returns
    -------
    pandas.DataFrame
        Columns dataset, model, history, seed, trajectory, step, poisson_ratio, poisson_ratio_true
        (NaN for a rollout that is not finite), arrival_frame and arrival_frame_true (impact; NaN otherwise).
    """
    frames = []
    for path in paths:
        ds = read_evaluation(path)
        at = ds.sel(step=int(ds["step"].values[-1]) if step is None else step)
        arrival = {name: at[name].values if name in at else np.nan for name in ("arrival_frame", "arrival_frame_true")}
        frames.append(pd.DataFrame({**_keys(ds), "trajectory": at["trajectory"].values, "step": int(at["step"]),
                                    "poisson_ratio": at["poisson_ratio"].values, "poisson_ratio_true": at["poisson_ratio_true"].values,
                                    **arrival}))
    return pd.concat(frames, ignore_index=True)


def load_mode_energy(paths, step: int | None = None) -> pd.DataFrame:
    """Squared error per node on each Laplacian eigenmode at one step, mean over the finite rollouts.

    Parameters
    ----------
    paths : iterable of path
        Evaluation files.
    step : int, optional
        Rollout step; each file's table step by default.

    Returns
    -------
    pandas.DataFrame
        Columns dataset, model, history, seed, step, mode (0 = lowest eigenvalue), mode_error
        (``mode_energy / nodes`` [σ²], so that the modes of a file sum to its ``slow_mse``).
    """
    frames = []
    for path in paths:
        ds = read_evaluation(path)
        at = ds.sel(step=int(ds.attrs["table_step"]) if step is None else step)
        energy = at["mode_energy"].transpose("trajectory", "mode").values / at["nodes"].values[:, None]
        frames.append(pd.DataFrame({**_keys(ds), "step": int(at["step"]), "mode": at["mode"].values, "mode_error": finite_mean(energy)}))
    return pd.concat(frames, ignore_index=True)


def at_step(frame: pd.DataFrame, step: int | str = "table") -> pd.DataFrame:
    """The rows of one rollout step per file.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`load_evaluations`.
    step : int or {"table", "last"}
        A step number, each file's table step, or each file's last step.

    Returns
    -------
    pandas.DataFrame
    """
    if step == "table":
        chosen = frame["table_step"]
    elif step == "last":
        chosen = frame.groupby(KEYS)["step"].transform("max")
    else:
        chosen = step
    return frame[frame["step"] == chosen].reset_index(drop=True)


def for_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The study's display rule: Poisson R^2 below :data:`R2_FLOOR` set to it, l2 above :data:`L2_SHOWN_UP_TO` set to NaN.

    Tables keep the raw numbers; only figures use this.
    """
    return frame.assign(poisson_r2=frame["poisson_r2"].clip(lower=R2_FLOOR), l2=frame["l2"].where(frame["l2"] <= L2_SHOWN_UP_TO))


def summary_table(frame: pd.DataFrame, metric: str, step: int | str = "table") -> pd.DataFrame:
    """Mean and standard deviation over seeds of a metric at one step (the study's Tables 1 and 2).

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`load_evaluations`.
    metric : str
        A column of ``frame`` (``l2``, ``poisson_r2``, ...).
    step : int or {"table", "last"}
        See :func:`at_step`; each file's table step by default.

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, model, history, step): ``mean`` and ``std`` (``ddof=1``; NaN for one seed) of the
        raw per-seed values (NaN if a seed has no finite rollout left), ``seeds``, ``blown_up`` (rollouts blown
        up at that step, summed over seeds) and ``rollouts`` (test rollouts, summed over seeds).
    """
    grouped = at_step(frame, step).groupby(["dataset", "model", "history", "step"])
    table = grouped[metric].agg(mean=lambda v: v.mean(skipna=False), std=lambda v: v.std(skipna=False), seeds="size")
    counts = grouped[["blown_up_count", "rollouts"]].sum().rename(columns={"blown_up_count": "blown_up"})
    return table.join(counts).reset_index()


def steps_table(frame: pd.DataFrame, metric: str, steps) -> pd.DataFrame:
    """:func:`summary_table` of a metric at each of ``steps`` that some rollout reaches, stacked (its ``step`` column
    tells them apart; :func:`format_table` with ``by_step`` shows one column per dataset and step)."""
    parts = [summary_table(frame, metric, int(step)) for step in steps]
    parts = [part for part in parts if len(part)]
    return pd.concat(parts, ignore_index=True) if parts else summary_table(frame.iloc[:0], metric, 1)


#: Table 2's metric of each trajectory protocol: the Poisson ratio R^2 at the table step for compressions; for
#: impacts (fixed box, no Poisson ratio) the mean absolute error of the wave front's arrival frame at the far strip.
HEADLINE_METRICS = {name: protocol.headline for name, protocol in PROTOCOLS.items()}
#: Metrics that stand in for Table 2's in some columns: which means are best, and the note on the column.
STAND_IN_METRICS = {"arrival_error": ("lower", "arrival error [frames]")}


def headline_table(frame: pd.DataFrame, step: int | str = "table") -> pd.DataFrame:
    """Table 2: :func:`summary_table` of each dataset's :data:`HEADLINE_METRICS` metric, named in a ``metric`` column."""
    parts = [summary_table(rows, HEADLINE_METRICS[protocol], step).assign(metric=HEADLINE_METRICS[protocol])
             for protocol, rows in frame.groupby("protocol")]
    return pd.concat(parts, ignore_index=True)


def dataset_label(name: str) -> str:
    """The study's name of a dataset (``node_opt`` -> ``NODE-OPT``)."""
    return name.upper().replace("_", "-")


def model_label(key: str) -> str:
    """The display name of a model (its key if it has no style in :data:`MODEL_STYLES`)."""
    return MODEL_STYLES[key][0] if key in MODEL_STYLES else key


def ordered(names, order) -> list[str]:
    """Distinct ``names`` in the order of ``order``, the others after them, sorted."""
    names = set(names)
    return [name for name in order if name in names] + sorted(names - set(order))


def format_table(table: pd.DataFrame, better: str, style: str = "markdown", by_step: bool = False) -> str:
    """A :func:`summary_table` as Markdown or LaTeX: rows models, columns datasets, cells "mean ± std".

    The best mean of each column is in bold, an oracle's (:data:`densim.models.ORACLES`) never; blown-up rollouts are noted in the cell ("2/16 blown up"). With
    several histories a row is one (model, history). With ``by_step`` (a :func:`steps_table`) a column is one
    (dataset, step).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`summary_table`, or :func:`headline_table` (a column whose metric is in :data:`STAND_IN_METRICS`
        has that metric's direction and a note in its header).
    better : {"lower", "higher"}
        Which means are best.
    style : {"markdown", "latex"}

    Returns
    -------
    str
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', not {better!r}")
    several = table["history"].nunique() > 1
    rows = table.assign(model=pd.Categorical(table["model"], ordered(table["model"], MODEL_STYLES))).sort_values(["model", "history"])
    rows = rows.assign(row=[model_label(m) + (f" (h={h})" if several else "") for m, h in zip(rows["model"], rows["history"])],
                       cell=[_cell(*values) for values in rows[["mean", "std", "blown_up", "rollouts"]].itertuples(index=False)])
    datasets = ordered(rows["dataset"], DATASET_ORDER)
    if by_step:
        rows = rows.assign(column=[f"{dataset}@{int(step)}" for dataset, step in zip(rows["dataset"], rows["step"])])
        columns = [column for _, column in sorted({((datasets.index(d), int(s)), f"{d}@{int(s)}") for d, s in zip(rows["dataset"], rows["step"])})]
    else:
        rows, columns = rows.assign(column=rows["dataset"]), datasets
    order = list(dict.fromkeys(rows["row"]))
    cells = rows.pivot(index="row", columns="column", values="cell").reindex(index=order, columns=columns).fillna("")
    means = rows.pivot(index="row", columns="column", values="mean").reindex(index=order, columns=columns)
    oracle_rows = list(dict.fromkeys(rows.loc[rows["model"].isin(ORACLES), "row"]))
    means_to_rank = means.drop(index=oracle_rows)  # an oracle is reported, never the best
    stand_in = rows.groupby("column")["metric"].first().map(STAND_IN_METRICS).dropna() if "metric" in rows else pd.Series(dtype=object)
    lower = pd.Series({d: stand_in[d][0] == "lower" if d in stand_in else better == "lower" for d in columns}, dtype=bool)
    best = means.eq(means_to_rank.min().where(lower, means_to_rank.max())) & ~means.index.isin(oracle_rows)[:, None]
    name = (lambda column: f"{dataset_label(column.split('@')[0])}, step {column.split('@')[1]}") if by_step else dataset_label
    labels = {d: f"{name(d)} ({stand_in[d][1]})" if d in stand_in else name(d) for d in columns}
    return _render(cells.rename(columns=labels), best.rename(columns=labels), "Model", style)


def _cell(mean: float, std: float, blown_up: int, rollouts: int) -> str:
    """``mean ± std`` to three and two significant digits, with the blown-up rollouts if any."""
    text = "—" if np.isnan(mean) else f"{mean:.3g}" if np.isnan(std) else f"{mean:.3g} ± {std:.2g}"
    return text + (f" ({blown_up}/{rollouts} blown up)" if blown_up else "")


def difficulty_table(summary: pd.DataFrame, datasets, evaluations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Difficulty of each dataset from the trajectory summary (:data:`densim.observables.DIFFICULTY_DESCRIPTIONS`).

    Parameters
    ----------
    summary : pandas.DataFrame
        The trajectory summary table (``densim trajectories summary``), one row per dataset.
    datasets : iterable of str
        Datasets to report; one without a summary row (a union the summary left out) gets NaN.
    evaluations : pandas.DataFrame, optional
        :func:`load_evaluations`: adds the network oracle's Poisson R^2 at each dataset's table step (the same
        test trajectories for every model of a seed; mean over seeds).

    Returns
    -------
    pandas.DataFrame
        Columns dataset and the difficulty measures, rows in :data:`DATASET_ORDER`.
    """
    table = summary.set_index("dataset").reindex(columns=list(DIFFICULTY_DESCRIPTIONS))  # a measure a summary lacks is NaN
    if evaluations is not None:
        at = at_step(evaluations)
        table = table.reindex(table.index.union(at["dataset"].unique()))
        table["oracle_poisson_r2"] = at.groupby(["dataset", "seed"])["oracle_poisson_r2"].first().groupby("dataset").mean()
    return table.reindex(ordered(datasets, DATASET_ORDER)).rename_axis("dataset").reset_index()


def format_difficulty(table: pd.DataFrame, style: str = "markdown") -> str:
    """A :func:`difficulty_table` as Markdown or LaTeX (three significant digits, missing values empty)."""
    values = table.set_index("dataset").rename(index=dataset_label, columns=DIFFICULTY_LABELS)
    cells = values.map(lambda v: "" if np.isnan(v) else f"{v:.3g}")
    return _render(cells, pd.DataFrame(False, index=cells.index, columns=cells.columns), "Dataset", style)


def _render(cells: pd.DataFrame, bold: pd.DataFrame, corner: str, style: str) -> str:
    """Text cells (with bold ones) as a Markdown pipe table or a LaTeX booktabs tabular."""
    if style == "markdown":
        bolded = cells.where(~bold, "**" + cells + "**").rename_axis(corner)
        return bolded.to_markdown(colalign=("left", *["right"] * cells.shape[1])) + "\n"
    if style != "latex":
        raise ValueError(f"unknown table style {style!r}: expected 'markdown' or 'latex'")
    escaped = cells.map(_latex)
    escaped = escaped.where(~bold, "\\textbf{" + escaped + "}")
    lines = [" & ".join([_latex(corner), *map(_latex, cells.columns)]) + r" \\", r"\midrule"]
    lines += [" & ".join([_latex(label), *row]) + r" \\" for label, row in zip(cells.index, escaped.values.tolist())]
    return "\n".join([rf"\begin{{tabular}}{{l{'r' * cells.shape[1]}}}", r"\toprule", *lines, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _latex(text: str) -> str:
    """Text with LaTeX's special characters escaped and ±, ², — typeset."""
    for char, replacement in {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "±": r"$\pm$", "²": "$^2$", "—": "--"}.items():
        text = text.replace(char, replacement)
    return text


#: The early rollout step the ablation tables report beside the table step (the seed's warmup claim is about early steps).
EARLY_STEP = 5
#: The metrics of an ablation table, at the early step (``*_early``) or the table step.
ABLATION_METRICS = ("l2_early", "l2", "relative_mse", "poisson_r2", "arrival_error")


def ablation_frame(frame: pd.DataFrame, grid: list[dict]) -> pd.DataFrame:
    """Evaluation rows of an ablation's variants, each labelled with its model, factor and value.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`load_evaluations` of the ablation's files (``model`` is the variant key).
    grid : list of dict
        :func:`densim.experiments.ablation_grid` (``key``, ``model``, ``factor``, ``value``, ``own``); a model at its
        own setting appears once per factor.

    Returns
    -------
    pandas.DataFrame
        ``frame`` with ``variant`` (the key), ``model`` (the registered model), ``factor``, ``value`` (as text) and
        ``own``.
    """
    rows = pd.DataFrame(grid).rename(columns={"key": "variant"}).astype({"value": str})
    return frame.rename(columns={"model": "variant"}).merge(rows, on="variant")


def value_order(values) -> list[str]:
    """Factor values in numeric order, words (``window``) after numbers."""
    return sorted(set(values), key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v))


def ablation_table(frame: pd.DataFrame, early_step: int = EARLY_STEP) -> pd.DataFrame:
    """Mean and standard deviation over seeds of :data:`ABLATION_METRICS` per ablation variant.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`ablation_frame`.
    early_step : int
        The early rollout step of ``l2_early``.

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, model, history, factor, value, own): ``<metric>_mean`` and ``<metric>_std``, ``seeds``,
        ``blown_up`` (at the table step, summed over seeds) and ``rollouts``.
    """
    keys = ["dataset", "model", "variant", "history", "seed", "factor", "value", "own"]
    early = at_step(frame, early_step)[keys + ["l2"]].rename(columns={"l2": "l2_early"})
    rows = at_step(frame).merge(early, on=keys, how="left")
    grouped = rows.groupby(["dataset", "model", "history", "factor", "value", "own"])
    table = grouped[list(ABLATION_METRICS)].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    counts = grouped.agg(seeds=("seed", "size"), blown_up=("blown_up_count", "sum"), rollouts=("rollouts", "sum"))
    table = table.join(counts).reset_index()
    order = {value: i for i, value in enumerate(value_order(table["value"]))}
    return table.sort_values(["dataset", "model", "factor", "value"], key=lambda c: c.map(order) if c.name == "value" else c,
                             ignore_index=True)


def format_ablation(table: pd.DataFrame, style: str = "markdown") -> str:
    """An :func:`ablation_table` as Markdown or LaTeX: one row per variant, cells "mean ± std" over seeds."""
    labels = {"l2_early": f"L2 [σ], step {EARLY_STEP}", "l2": "L2 [σ], table step", "relative_mse": "relative MSE",
              "poisson_r2": "Poisson R²", "arrival_error": "arrival error [frames]"}
    rows = [f"{dataset_label(r.dataset)} · {model_label(r.model)} · {r.factor} = {r.value}{' (own)' if r.own else ''}"
            + (f" · h={r.history}" if table["history"].nunique() > 1 else "") for r in table.itertuples()]
    cells = pd.DataFrame({labels[m]: [_cell(mean, std, blown, total) if m == "l2" else _cell(mean, std, 0, total)
                                      for mean, std, blown, total in table[[f"{m}_mean", f"{m}_std", "blown_up", "rollouts"]].itertuples(index=False)]
                          for m in ABLATION_METRICS if table[f"{m}_mean"].notna().any()}, index=rows)
    return _render(cells, pd.DataFrame(False, index=cells.index, columns=cells.columns), "Variant", style)


