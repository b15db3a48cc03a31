"""The regime study's reduction: seed-by-seed comparison with the linear floor, its table, words and figure."""

import numpy as np
import pandas as pd
import pytest

from densim.regime import beats, format_regime, plot_regime, regime_table, verdicts


def synthetic(gaps: dict[str, list[float]], datasets=("noi_pru_dt0.5_after", "noi_pru_dt2_inside")) -> pd.DataFrame:
    """Evaluation rows of the linear floor (relative MSE 0.5 at every step) and models offset by ``gaps`` per seed."""
    rows = []
    for dataset in datasets:
        for model, gap in {"linear_floor": [0.0, 0.0], "frozen": [0.5, 0.5], **gaps}.items():
            for seed, offset in enumerate(gap):
                for step in range(1, 51):
                    rows.append({"dataset": dataset, "model": model, "history": 2, "seed": seed, "step": step, "table_step": 50,
                                 "relative_mse": 0.5 + offset, "poisson_r2": -offset, "oracle_poisson_r2": 0.8,
                                 "frame_time": 0.5 if "0.5" in dataset else 2.0, "start_frame": 160 if "after" in dataset else 2,
                                 "start_time": 80.0 if "after" in dataset else 4.0, "table_strain": -1e-3,
                                 "rollout_start_frame": 160 if "after" in dataset else 0, "protocol": "compression"})
    return pd.DataFrame(rows)


def test_a_model_beats_the_floor_only_beyond_the_seeds_spread():
    evaluations = synthetic({"spatial": [-0.1, -0.12], "nlsf_norm": [-0.1, 0.05], "chebnet": [0.1, 0.2]})
    seeds = evaluations[evaluations["step"] == 50]
    verdict = beats(seeds, "relative_mse").set_index("model")
    assert verdict.loc["spatial", "beats"].all() and not verdict.loc["nlsf_norm", "beats"].any() and not verdict.loc["chebnet", "beats"].any()
    assert verdict.loc["spatial", "gap"].iloc[0] == pytest.approx(-0.11)
    higher = beats(seeds, "poisson_r2", lower_is_better=False).set_index("model")
    assert higher.loc["spatial", "beats"].all() and higher.loc["spatial", "gap"].iloc[0] == pytest.approx(0.11)
    versus = beats(seeds, "relative_mse", reference="spatial").set_index("model")  # NLSF (norm): +0.0 and +0.17 over spatial
    assert not versus.loc["nlsf_norm", "beats"].any() and not versus.loc["nlsf_norm", "trails"].any()
    assert versus.loc["chebnet", "trails"].all() and "linear_floor" in versus.index


def test_the_regime_table_its_words_and_its_figure():
    evaluations = synthetic({"spatial": [-0.1, -0.12], "nlsf_norm": [-0.01, 0.05]})
    histories = pd.DataFrame([{"dataset": d, "model": m, "history": 2, "seed": s, "one_step_validation": 0.1, "best_step": 100,
                               "stopped_at": 300, "windows": "everywhere"}
                              for d in evaluations["dataset"].unique() for m in evaluations["model"].unique() for s in (0, 1)])
    summary = pd.DataFrame({"dataset": ["noi_pru_dt0.5_after", "noi_pru_dt2_inside"], "local_predictability_r2": [0.8, 0.3],
                            "fastest_period_frames": [5.0, 1.3], "linear_floor_r2": [0.1, 0.0]})
    table = regime_table(evaluations, histories, summary, {"noi_pru_dt0.5_after": {"networks": "noi_pru"}, "noi_pru_dt2_inside": {"networks": "noi_pru"}})
    spatial = table[(table["model"] == "spatial") & (table["dataset"] == "noi_pru_dt0.5_after")].iloc[0]
    assert spatial["relative_mse_10"] == pytest.approx(0.39) and spatial["beats_floor_relative_mse_50"]
    assert set(table.loc[table["dataset"] == "noi_pru_dt2_inside", "window"]) == {"inside transient"}
    assert spatial["window"] == "after transient" and spatial["local_predictability_r2"] == 0.8 and spatial["table_strain"] == 1e-3
    lines = verdicts(table)
    assert len(lines) == 2 and "step 50: Spatial" in lines[0] and "NLSF (norm) trails Spatial at step 50 beyond" in lines[0]
    assert "*" in format_regime(table)
    fig = plot_regime(table)
    assert len(fig.axes) == 4
    assert np.isfinite(table["oracle_poisson_r2"]).all()
