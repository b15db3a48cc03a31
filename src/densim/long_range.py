"""Networks where range matters: do the long-range models gain more over the spatial one on large networks?

At the study's size (100 to 400 nodes) a network is 10 to 20 bonds across and a few message-passing blocks reach
much of it in one prediction. :func:`long_range_table` sets, for datasets that differ in network size only (the
same generator and protocol, ``workflow/presets/large.yaml``), each model's rollout error beside two lengths: the
networks' diameter in bonds (:func:`network_reach`, exact breadth-first distances) and the bonds a model's
prediction of one frame can read (its ``receptive_field``: ``num_layers`` for the spatial model, four per latent
step for IGNS, every node for the models that read the global eigenvectors). The gain over spatial is the spatial
model's relative MSE over the model's, seed by seed (above 1: the model is better); :func:`verdicts` says whether
each model's gain is larger on the larger networks of the same family, beyond the seeds' spread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

from densim.io import read_network
from densim.models import BASELINES, ORACLES, build_model
from densim.regime import SPATIAL, STEPS, per_seed
from densim.tables import dataset_label, model_label, ordered

#: Sources of the breadth-first distances solved at once (bounds the distance block's memory to 512 x nodes).
_CHUNK = 512


def hop_distances(bonds: np.ndarray, num_nodes: int) -> tuple[int, float]:
    """Diameter and mean distance of a network's graph, in bonds (every pair, breadth-first from every node).

    Raises
    ------
    ValueError
        When the graph is not connected (an infinite distance).
    """
    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(num_nodes, num_nodes)).tocsr()
    longest, total = 0.0, 0.0
    for start in range(0, num_nodes, _CHUNK):
        block = shortest_path(graph, directed=False, unweighted=True, indices=np.arange(start, min(start + _CHUNK, num_nodes)))
        if not np.isfinite(block).all():
            raise ValueError("the network's graph is not connected")
        longest, total = max(longest, float(block.max())), total + float(block.sum())
    return int(longest), total / (num_nodes * (num_nodes - 1))


def network_reach(paths) -> pd.DataFrame:
    """One row per network file ``results/networks/{dataset}/{network}.nc``: dataset (its folder), network, nodes,
    bonds, diameter and mean_distance (in bonds, :func:`hop_distances`)."""
    rows = []
    for path in map(Path, paths):
        network, _ = read_network(path)
        diameter, mean = hop_distances(network.bonds, network.num_nodes)
        rows.append({"dataset": path.parent.name, "network": path.stem, "nodes": network.num_nodes, "bonds": len(network.bonds),
                     "diameter": diameter, "mean_distance": mean})
    return pd.DataFrame(rows)


def receptive_fields(models: dict[str, dict]) -> dict[str, float]:
    """Bonds each model's prediction of one frame reads (inf: every node), from its hyperparameters (the config's
    ``models`` section; a baseline reads none)."""
    return {key: build_model(key, node_in=2, edge_in=4, out=2, **({} if key in BASELINES else models.get(key, {}))).receptive_field
            for key in models}


def long_range_table(evaluations: pd.DataFrame, reach: pd.DataFrame, families: dict[str, dict], fields: dict[str, float],
                     steps=STEPS) -> pd.DataFrame:
    """One row per (dataset, model, history): the dataset's family and network size, its networks' diameter, the
    model's receptive field, and mean and std over seeds of the relative MSE at ``steps``, of the gain over spatial
    at those steps, of the Poisson R^2 and of the impact's arrival error.

    Parameters
    ----------
    evaluations : pandas.DataFrame
        :func:`densim.tables.load_evaluations` of every run.
    reach : pandas.DataFrame
        :func:`network_reach` of the networks the datasets use.
    families : dict
        Dataset -> ``{"networks": the dataset whose networks it uses, "family": what the datasets compared across
        sizes share (generator and protocol)}``.
    fields : dict
        Model -> :func:`receptive_fields`.
    """
    seeds = per_seed(evaluations, steps)
    arrival = evaluations[evaluations["step"] == evaluations["table_step"]].set_index(["dataset", "model", "history", "seed"])["arrival_error"]
    seeds["arrival_error"] = arrival.reindex(pd.MultiIndex.from_frame(seeds[["dataset", "model", "history", "seed"]])).to_numpy()
    spatial = seeds[seeds["model"] == SPATIAL].set_index(["dataset", "history", "seed"])
    for step in steps:
        reference = spatial[f"relative_mse_{step}"].reindex(pd.MultiIndex.from_frame(seeds[["dataset", "history", "seed"]])).to_numpy()
        seeds[f"gain_{step}"] = reference / seeds[f"relative_mse_{step}"].to_numpy()
    sizes = reach.groupby("dataset").agg(nodes=("nodes", "mean"), diameter=("diameter", "mean"), diameter_max=("diameter", "max"),
                                         mean_distance=("mean_distance", "mean"))
    metrics = [*(f"relative_mse_{s}" for s in steps), *(f"gain_{s}" for s in steps), "poisson_r2", "arrival_error"]
    rows = []
    for (dataset, model, history), group in seeds.groupby(["dataset", "model", "history"]):
        size = sizes.loc[families[dataset]["networks"]]
        row = {"dataset": dataset, "family": families[dataset]["family"], "model": model, "history": history, "seeds": len(group),
               "nodes": size["nodes"], "diameter": size["diameter"], "diameter_max": size["diameter_max"],
               "mean_distance": size["mean_distance"], "receptive_field": fields.get(model, np.nan),
               "table_step": int(group["table_step"].iloc[0])}
        for metric in metrics:
            values = group[metric].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            row[metric] = values.mean() if len(values) else np.nan
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0
        rows.append(row)
    order = {model: i for i, model in enumerate(ordered(seeds["model"].unique(), list(fields)))}
    table = pd.DataFrame(rows)
    return table.sort_values(["family", "nodes", "dataset", "model"], key=lambda c: c.map(order) if c.name == "model" else c, ignore_index=True)


def _reach(field: float, diameter: float) -> str:
    """The receptive field in words beside the diameter."""
    if math.isinf(field):
        return "every node"
    return f"{field:g} bonds ({field / diameter:.0%} of the diameter)" if diameter else f"{field:g} bonds"


def verdicts(table: pd.DataFrame, step: int = STEPS[-1]) -> list[str]:
    """Per family and learned model (not spatial): its gain over spatial at rollout ``step`` on the smallest and the
    largest networks of the family, and whether it is larger on the larger ones beyond the seeds' spread."""
    lines, gain, spread = [], f"gain_{step}", f"gain_{step}_std"
    for family, rows in table.groupby("family", sort=False):
        sizes = sorted(rows["nodes"].unique())
        if len(sizes) < 2:
            lines.append(f"{family}: one network size only, nothing to compare")
            continue
        small, large = rows[rows["nodes"] == sizes[0]].set_index("model"), rows[rows["nodes"] == sizes[-1]].set_index("model")
        for model in ordered(set(small.index) & set(large.index) - {SPATIAL, *BASELINES}, list(table["model"].unique())):
            a, b = small.loc[model], large.loc[model]
            if not (np.isfinite(a[gain]) and np.isfinite(b[gain])):
                lines.append(f"{family}, {model_label(model)}: no gain at step {step} (a rollout shorter than the step, or no spatial run)")
                continue
            if b[gain] - b[spread] > a[gain] + a[spread]:
                word = "gains more on the larger networks"
            elif b[gain] + b[spread] < a[gain] - a[spread]:
                word = "gains less on the larger networks"
            else:
                word = "gains the same within the seeds' spread"
            lines.append(f"{family}, {model_label(model)} over spatial at step {step}: {a[gain]:.2f} ± {a[spread]:.2f} at "
                         f"{sizes[0]:.0f} nodes (diameter {a['diameter']:.0f} bonds), {b[gain]:.2f} ± {b[spread]:.2f} at {sizes[-1]:.0f} "
                         f"nodes (diameter {b['diameter']:.0f}): {word} (reach per frame: {_reach(b['receptive_field'], b['diameter'])}; "
                         f"spatial's {_reach(large.loc[SPATIAL, 'receptive_field'], b['diameter']) if SPATIAL in large.index else 'not run'})"
                         f"{_against_baselines(large, model, step)}")
    return lines


def _against_baselines(rows: pd.DataFrame, model: str, step: int) -> str:
    """Whether ``model`` beats the best closed-form baseline (not ``frozen``, the unit) on these rows at ``step``."""
    metric = f"relative_mse_{step}"
    baselines = rows.loc[[key for key in rows.index if key in BASELINES and key not in ("frozen", *ORACLES)
                          and np.isfinite(rows.loc[key, metric])], metric]
    if baselines.empty:
        return ""
    best = baselines.idxmin()
    verb = "beats" if rows.loc[model, metric] < baselines[best] else "does not beat"
    return (f"; on the larger networks it {verb} the best baseline, {model_label(best)} (relative MSE {rows.loc[model, metric]:.3g} "
            f"against {baselines[best]:.3g})")


def format_long_range(table: pd.DataFrame, steps=STEPS) -> str:
    """The table as Markdown: one row per (dataset, model), cells "mean ± std" over seeds."""
    def cell(row, metric, digits=3):
        mean, std = row[metric], row[f"{metric}_std"]
        return "" if not np.isfinite(mean) else f"{mean:.{digits}g} ± {std:.2g}"

    header = ["dataset", "nodes", "diameter (bonds)", "model", "reach per frame (bonds)", *(f"rel. MSE @{s}" for s in steps),
              *(f"gain over spatial @{s}" for s in steps), "Poisson R²", "arrival error (frames)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":--" if i in (0, 3) else "--:" for i in range(len(header))) + "|"]
    for _, row in table.iterrows():
        field = "every node" if math.isinf(row["receptive_field"]) else f"{row['receptive_field']:g}"
        lines.append("| " + " | ".join([dataset_label(row["dataset"]), f"{row['nodes']:.0f}", f"{row['diameter']:.1f} (max {row['diameter_max']:.0f})",
                                        model_label(row["model"]), field, *(cell(row, f"relative_mse_{s}") for s in steps),
                                        *(cell(row, f"gain_{s}") for s in steps), cell(row, "poisson_r2"), cell(row, "arrival_error")]) + " |")
    return "\n".join(lines)


def plot_long_range(table: pd.DataFrame, steps=STEPS):
    """Gain over spatial against network size, one panel per family, one line per learned model and a grey dashed one
    per closed-form baseline (not frozen), at the last of ``steps``, on a log scale (error bars: std over seeds; the
    dotted line is spatial itself)."""
    import matplotlib.pyplot as plt

    from densim.plots import model_styles

    step = steps[-1]
    families = list(dict.fromkeys(table["family"]))
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    models = [m for m in dict.fromkeys(table["model"]) if m != "frozen"]
    styles = model_styles(models)
    for ax, family in zip(axes[0], families):
        rows = table[table["family"] == family]
        grey = iter([("s", "--"), ("^", "-."), ("v", ":"), ("D", "--")] * len(models))
        for model in models:
            line = rows[rows["model"] == model].sort_values("nodes")
            if line.empty or model == SPATIAL:
                continue
            label, colour, _ = styles[model]
            if model in BASELINES:
                marker, dashes = next(grey)
                ax.plot(line["nodes"], line[f"gain_{step}"], color="0.5", linestyle=dashes, marker=marker, markersize=4, label=label)
            else:
                ax.errorbar(line["nodes"], line[f"gain_{step}"], yerr=line[f"gain_{step}_std"], marker="o", capsize=3, label=label, color=colour)
        ax.axhline(1.0, color="k", linestyle=":", linewidth=1, label="spatial")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes per network")
        ax.set_title(family)
        labels = rows.drop_duplicates("nodes").sort_values("nodes")
        ax.set_xticks(labels["nodes"], [f"{n:.0f}\n({d:.0f} bonds)" for n, d in zip(labels["nodes"], labels["diameter"])])
        ax.minorticks_off()
    axes[0][0].set_ylabel(f"spatial rel. MSE / model's (step {step})")
    axes[0][-1].legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return fig
