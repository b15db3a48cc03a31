"""Figures and tables from tiny hand-made evaluation files: seed statistics, blow-ups, display rule, notebooks."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from densim.figures import render_notebook
from densim.io import DensimFileError, read_evaluation, write_dataset, write_table
from densim.plots import plot_history, plot_rollout_accuracy
from densim.tables import (at_step, difficulty_table, for_display, format_difficulty, format_table, load_evaluations, load_mode_energy,
                           load_parity, steps_table, summary_table)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NODES, MODES, SLOW_SHARE = 4, 2, 0.25


def evaluation(l2, poisson_r2, dataset="node_opt", model="spatial", seed=0, history=2, table_step=2) -> xr.Dataset:
    """An evaluation Dataset of len(l2) trajectories and len(poisson_r2) steps with the given numbers.

    Non-finite ``l2`` marks a blown-up rollout; ``mse = l2**2``, a quarter of it on the slow modes, split evenly.
    """
    l2 = np.asarray(l2, dtype=float)
    mse = l2**2
    blown = np.maximum.accumulate(~np.isfinite(l2) | (np.nan_to_num(l2, nan=np.inf) > 1.0), axis=1)
    nu_true = np.linspace(-0.2, 0.4, l2.size).reshape(l2.shape)
    per_step = ("trajectory", "step")
    return xr.Dataset(
        {
            "l2": (per_step, l2), "rms": (per_step, l2), "mse": (per_step, mse), "frozen_mse": (per_step, np.ones_like(l2)),
            "poisson_ratio": (per_step, nu_true + 0.1), "poisson_ratio_true": (per_step, nu_true),
            "slow_share": (per_step, np.full_like(l2, SLOW_SHARE)), "blown_up": (per_step, blown),
            "mode_energy": (("trajectory", "step", "mode"), np.repeat(mse[..., None] * NODES * SLOW_SHARE / MODES, MODES, axis=2)),
            "nodes": ("trajectory", np.full(len(l2), NODES)),
            "relative_mse": ("step", np.nanmean(mse, axis=0)), "poisson_r2": ("step", np.asarray(poisson_r2, dtype=float)),
            "poisson_bias": ("step", np.full(l2.shape[1], 0.1)), "blown_up_count": ("step", blown.sum(0)),
        },
        coords={"trajectory": [f"{dataset}/{i:04d}" for i in range(len(l2))], "step": np.arange(1, l2.shape[1] + 1), "mode": np.arange(MODES)},
        attrs={"densim_kind": "evaluation", "dataset": dataset, "model": model, "seed": seed, "history": history,
               "table_step": table_step, "blowup_l2": 1.0},
    )


def write(folder: Path, ds: xr.Dataset) -> Path:
    a = ds.attrs
    return write_dataset(ds, folder / a["dataset"] / a["model"] / f"h{a['history']}" / f"seed{a['seed']}.nc")


@pytest.fixture
def files(tmp_path):
    """Two seeds of two models on node_opt (history 2), and the spatial model at history 1 on noi_pru."""
    grid = [
        evaluation([[0.1, 0.1, 0.5], [0.1, 0.3, 0.5]], [0.5, 0.9, 0.8], seed=0),
        evaluation([[0.1, 0.4, 0.5], [0.1, 0.4, 0.5]], [0.5, 0.7, 0.6], seed=1),
        evaluation([[0.1, 0.2, 0.3], [0.1, np.nan, np.nan]], [0.5, 0.95, 0.9], model="nlsf_norm", seed=0),
        evaluation([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], [0.5, 0.85, 0.9], model="nlsf_norm", seed=1),
        evaluation([[0.5, 2.0, 3.0], [0.5, 2.0, 3.0]], [0.1, -0.5, -0.7], dataset="noi_pru", history=1),
        evaluation([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], [0.5, 0.6, 0.7], dataset="noi_pru", history=2),
    ]
    return [write(tmp_path / "eval", ds) for ds in grid]


def test_table_is_mean_and_std_over_seeds(files):
    table = summary_table(load_evaluations(files), "l2").set_index(["dataset", "model", "history"])
    row = table.loc[("node_opt", "spatial", 2)]
    per_seed = [np.mean([0.1, 0.3]), np.mean([0.4, 0.4])]  # l2 at the table step (2), mean over trajectories
    assert row["step"] == 2 and row["seeds"] == 2
    assert row["mean"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert row["std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    r2 = summary_table(load_evaluations(files), "poisson_r2").set_index(["dataset", "model", "history"])
    assert r2.loc[("node_opt", "nlsf_norm", 2), "mean"] == pytest.approx(0.9)
    assert r2.loc[("node_opt", "nlsf_norm", 2), "std"] == pytest.approx(np.std([0.95, 0.85], ddof=1))


def test_blown_up_rollout_is_counted_not_dropped(files):
    frame = load_evaluations(files)
    nlsf = at_step(frame).query("model == 'nlsf_norm'").set_index("seed")
    assert nlsf.loc[0, "l2"] == pytest.approx(0.2)  # the mean over the finite rollout
    assert nlsf.loc[0, "blown_up_count"] == 1 and nlsf.loc[0, "rollouts"] == 2
    row = summary_table(frame, "l2").set_index(["dataset", "model"]).loc[("node_opt", "nlsf_norm")]
    assert (row["seeds"], row["blown_up"], row["rollouts"]) == (2, 1, 4)
    markdown = format_table(summary_table(frame, "l2"), "lower")
    assert "**0.2 ± 0 (1/4 blown up)**" in markdown  # the best of its column, with the blow-up noted
    assert "0.3 ± 0.14 |" in markdown


def test_the_relative_mse_table_has_one_column_per_dataset_and_step(files):
    """Steps the rollouts never reach are left out; each column is the summary table's at its step."""
    frame = load_evaluations(files).query("history == 2")
    table = steps_table(frame, "relative_mse", [1, 3, 50])
    assert sorted(table["step"].unique()) == [1, 3]
    at3 = summary_table(frame, "relative_mse", 3).set_index(["dataset", "model"])["mean"]
    assert table.query("step == 3").set_index(["dataset", "model"])["mean"].equals(at3)
    header = format_table(table, "lower", by_step=True).splitlines()[0]
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["Model", "NODE-OPT, step 1", "NODE-OPT, step 3",
                                                                       "NOI-PRU, step 1", "NOI-PRU, step 3"]
    assert f"{at3[('node_opt', 'nlsf_norm')]:.3g} ±" in format_table(table, "lower", by_step=True)


def test_display_rule_in_history_figure_but_not_in_tables(files):
    frame = load_evaluations(files)
    raw = at_step(frame).query("dataset == 'noi_pru'").set_index("history")
    assert raw.loc[1, "poisson_r2"] == -0.5 and raw.loc[1, "l2"] == 2.0
    table = summary_table(frame, "poisson_r2").set_index(["dataset", "history"])
    assert table.loc[("noi_pru", 1), "mean"] == -0.5
    shown = for_display(at_step(frame)).query("dataset == 'noi_pru'").set_index("history")
    assert shown.loc[1, "poisson_r2"] == 0.0 and np.isnan(shown.loc[1, "l2"]) and shown.loc[2, "l2"] == pytest.approx(0.2)
    fig = plot_history(frame)
    ax_r2, ax_l2 = fig.axes[1], fig.axes[3]  # the noi_pru column (R^2 row, L2 row)
    drawn_r2 = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax_r2.lines])
    drawn_l2 = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax_l2.lines])
    assert set(drawn_r2[np.isfinite(drawn_r2)].round(12)) == {0.0, 0.6}  # h=1 at 0, h=2 as it is
    assert set(drawn_l2[np.isfinite(drawn_l2)].round(12)) == {0.2}  # h=1 (L2 = 2) left out


def test_parity_shows_the_best_learned_model(tmp_path, files):
    frozen = write(tmp_path / "eval", evaluation([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], [0.9, 0.99, 0.99], model="frozen"))
    main = [path for path in [*files, frozen] if "/h2/" in str(path)]
    fig = plot_rollout_accuracy(load_evaluations(main), load_parity(main))
    node_opt_parity = fig.axes[2]
    assert [text.get_text() for text in node_opt_parity.texts] == ["NLSF (norm)\nstep 3, R² = 0.90 ± 0.00"]
    assert len(node_opt_parity.collections[0].get_offsets()) == 4  # both seeds' rollouts


def test_mode_errors_add_up_to_the_slow_error(files):
    frame = at_step(load_evaluations(files)).set_index(["dataset", "model", "history", "seed"])
    modes = load_mode_energy(files).groupby(["dataset", "model", "history", "seed"])["mode_error"].sum()
    np.testing.assert_allclose(modes.sort_index(), frame["slow_mse"].sort_index(), rtol=1e-12)
    spatial = frame.loc[("node_opt", "spatial", 2, 0)]
    mse = np.mean([0.1**2, 0.3**2])  # at the table step
    assert (spatial["slow_mse"], spatial["fast_mse"]) == pytest.approx((SLOW_SHARE * mse, (1 - SLOW_SHARE) * mse), rel=1e-12)


def test_bad_evaluation_files_are_named(tmp_path, files):
    foreign = write_dataset(evaluation([[0.1]], [0.5]).assign_attrs(densim_kind="trajectory"), tmp_path / "foreign.nc")
    with pytest.raises(DensimFileError, match="foreign.nc"):
        load_evaluations([files[0], foreign])
    unlabelled = evaluation([[0.1]], [0.5])
    del unlabelled.attrs["model"]
    with pytest.raises(DensimFileError, match=r"unlabelled.nc: missing attributes \['model'\]"):
        read_evaluation(write_dataset(unlabelled, tmp_path / "unlabelled.nc"))


def test_difficulty_of_a_dataset_without_summary_row_is_empty():
    summary = pd.DataFrame({"dataset": ["node_opt"], "linear_floor_r2": [0.5], "affine_acceleration_share": [1e-8],
                            "acceleration_over_velocity": [0.1], "noise_over_signal": [0.03]})
    table = difficulty_table(summary, ["comb", "node_opt"])
    assert list(table["dataset"]) == ["node_opt", "comb"] and table.iloc[1, 1:].isna().all()
    assert format_difficulty(table).splitlines()[3].replace(" ", "") == "|COMB|||||||"
    latex = format_difficulty(table, "latex")
    assert r"linear-floor R$^2$" in latex and r"COMB &  &  &  &  &  &  \\" in latex


def test_latex_table_bolds_the_best_and_typesets_plus_minus(files):
    latex = format_table(summary_table(load_evaluations(files), "poisson_r2"), "higher", "latex")
    assert r"NLSF (norm) (h=2) & \textbf{0.9 $\pm$ 0.071 (1/4 blown up)} &" in latex
    assert latex.startswith(r"\begin{tabular}{lrr}") and latex.rstrip().endswith(r"\end{tabular}")
    assert "(h=1)" in latex  # several histories: one row per (model, history)


@pytest.mark.slow
def test_notebooks_write_their_outputs_with_provenance(tmp_path, files):
    summary = write_table(pd.DataFrame({"dataset": ["node_opt", "noi_pru"], "linear_floor_r2": [0.5, 0.2], "affine_acceleration_share": [1e-8, 2e-8],
                                        "acceleration_over_velocity": [0.1, 0.2], "noise_over_signal": [0.03, 0.04]}), tmp_path / "summary.csv", {})
    evaluations = [str(path) for path in files]
    main = [str(path) for path in files if "/h2/" in str(path)]
    out = tmp_path / "results"
    runs = {
        "rollout_accuracy": {"evaluations": main, "figure": f"{out}/figures/rollout_accuracy"},
        "history": {"evaluations": evaluations, "figure": f"{out}/figures/history", "table": f"{out}/tables/history.csv"},
        "modes_and_bias": {"evaluations": main, "figure": f"{out}/figures/modes_and_bias"},
        "tables": {"evaluations": main, "summary": str(summary), "tables": f"{out}/tables"},
    }
    for name, parameters in runs.items():
        render_notebook(NOTEBOOKS / f"{name}.ipynb", out / "notebooks" / f"{name}.ipynb", parameters)
    written = [f"figures/{name}.{suffix}" for name in ("rollout_accuracy", "history", "modes_and_bias") for suffix in ("pdf", "png")]
    written += ["tables/history.csv"] + [f"tables/{name}.{suffix}" for name in ("table1_l2", "table2_poisson_r2", "difficulty")
                                         for suffix in ("csv", "md", "tex")]
    for relative in written:
        provenance = json.loads((out / f"{relative}.provenance.json").read_text())
        assert (out / relative).stat().st_size > 0 and "input_hashes" in provenance, relative
    assert json.loads((out / "figures/history.png.provenance.json").read_text())["config"] == '{"notebook": "history"}'
    assert sorted(path.name for path in (out / "notebooks").iterdir()) == sorted(f"{name}.ipynb" for name in runs)
    assert "**0.9 ± 0.071 (1/4 blown up)**" in (out / "tables/table2_poisson_r2.md").read_text()


@pytest.mark.slow
def test_failed_notebook_leaves_no_executed_copy(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    executed = tmp_path / "notebooks" / "tables.ipynb"
    with pytest.raises(PapermillExecutionError, match="missing.nc: no such file"):
        render_notebook(NOTEBOOKS / "tables.ipynb", executed, {"evaluations": [str(tmp_path / "missing.nc")], "summary": "x.csv",
                                                               "tables": str(tmp_path / "tables")})
    assert list(executed.parent.iterdir()) == []


def test_table2_takes_the_arrival_error_for_impact_datasets_lower_is_better(files, tmp_path):
    from densim.tables import headline_table

    impact = []
    for model, error in (("spatial", 2.0), ("nlsf_norm", 0.5)):
        ds = evaluation([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], [np.nan] * 3, dataset="impact", model=model)
        ds.attrs["protocol"] = "impact"
        impact.append(write(tmp_path / "eval", ds.assign(arrival_error=((), error), arrival_bias=((), -error))))
    table = headline_table(load_evaluations([*files, *impact])).set_index(["dataset", "model", "history"])
    assert table.loc[("impact", "nlsf_norm", 2), ["metric", "mean"]].tolist() == ["arrival_error", 0.5]
    assert table.loc[("node_opt", "nlsf_norm", 2), "metric"] == "poisson_r2"
    markdown = format_table(table.reset_index().query("history == 2"), "higher")
    header, _, spatial, nlsf = markdown.splitlines()[:4]
    assert "IMPACT (arrival error [frames])" in header
    assert "**0.5**" in nlsf and "**2**" not in spatial  # the lowest error is best in that column
    assert "**0.9 ±" in nlsf  # and the highest R^2 in the others
