"""The long-range study's reduction: exact graph distances, receptive fields from the config, the gain over spatial
and its verdicts across network sizes."""

import math

import numpy as np
import pandas as pd
import pytest

from densim.long_range import format_long_range, hop_distances, long_range_table, plot_long_range, receptive_fields, verdicts


def test_the_distances_of_a_ring_and_of_a_periodic_lattice_are_exact():
    n = 12
    ring = np.array([(i, (i + 1) % n) for i in range(n)])
    diameter, mean = hop_distances(ring, n)
    assert diameter == n // 2
    assert mean == pytest.approx(sum(min(d, n - d) for d in range(1, n)) / (n - 1))
    side = 6  # a periodic square lattice: the farthest node is side / 2 bonds away along each axis
    index = np.arange(side * side).reshape(side, side)
    square = np.concatenate([np.stack([index.ravel(), np.roll(index, 1, axis=axis).ravel()], axis=1) for axis in (0, 1)])
    assert hop_distances(square, side * side)[0] == side
    with pytest.raises(ValueError, match="not connected"):
        hop_distances(np.array([[0, 1], [2, 3]]), 4)


def test_receptive_fields_follow_the_models_hyperparameters():
    fields = receptive_fields({"spatial": {"num_layers": 3}, "chebnet": {"num_layers": 2, "K": 4}, "nlsf_norm": {}, "igns": {}, "linear_floor": {}})
    assert fields == {"spatial": 3.0, "chebnet": 6.0, "nlsf_norm": math.inf, "igns": 4.0, "linear_floor": 0.0}


def synthetic(relative: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Evaluation rows: relative MSE per (dataset, model), one value per seed, at every step up to 50."""
    rows = []
    for (dataset, model), values in relative.items():
        for seed, value in enumerate(values):
            for step in range(1, 51):
                rows.append({"dataset": dataset, "model": model, "history": 2, "seed": seed, "step": step, "table_step": 50,
                             "relative_mse": value, "poisson_r2": 0.5, "oracle_poisson_r2": 0.9, "frame_time": 0.5, "start_frame": 160,
                             "start_time": 80.0, "table_strain": -1e-3, "rollout_start_frame": 160, "protocol": "compression",
                             "arrival_error": np.nan})
    return pd.DataFrame(rows)


def test_the_gain_over_spatial_and_its_verdict_across_sizes():
    evaluations = synthetic({("small", "spatial"): [0.4, 0.4], ("small", "nlsf_norm"): [0.4, 0.5], ("small", "igns"): [0.2, 0.2],
                             ("large", "spatial"): [0.8, 0.8], ("large", "nlsf_norm"): [0.2, 0.2], ("large", "igns"): [0.4, 0.4],
                             ("small", "frozen"): [1.0, 1.0], ("large", "frozen"): [1.0, 1.0],
                             ("small", "linear_floor"): [0.3, 0.3], ("large", "linear_floor"): [0.3, 0.3]})
    reach = pd.DataFrame([{"dataset": "small", "network": "0000", "nodes": 200, "bonds": 500, "diameter": 14, "mean_distance": 7.0},
                          {"dataset": "large", "network": "0000", "nodes": 5000, "bonds": 12500, "diameter": 70, "mean_distance": 35.0}])
    families = {"small": {"networks": "small", "family": "noi_pru compression"}, "large": {"networks": "large", "family": "noi_pru compression"}}
    fields = {"spatial": 2.0, "nlsf_norm": math.inf, "igns": 4.0, "frozen": 0.0, "linear_floor": 0.0}
    table = long_range_table(evaluations, reach, families, fields)
    assert list(table["model"][:4]) == ["spatial", "nlsf_norm", "igns", "frozen"]  # the config's order, sizes in order
    row = table.set_index(["dataset", "model"])
    assert row.loc[("large", "nlsf_norm"), "gain_50"] == pytest.approx(4.0) and row.loc[("large", "spatial"), "gain_50"] == 1.0
    assert row.loc[("small", "nlsf_norm"), "gain_50"] == pytest.approx(0.9) and row.loc[("small", "nlsf_norm"), "gain_50_std"] > 0
    assert row.loc[("large", "igns"), "diameter"] == 70 and row.loc[("large", "igns"), "receptive_field"] == 4.0
    lines = verdicts(table)
    nlsf = next(line for line in lines if "NLSF (norm)" in line)
    igns = next(line for line in lines if "IGNS" in line)
    assert "gains more on the larger networks" in nlsf and "every node" in nlsf and "2 bonds (3% of the diameter)" in nlsf
    assert "gains the same within the seeds' spread" in igns  # 2.0 at both sizes
    assert "it beats the best baseline, Linear floor (baseline) (relative MSE 0.2 against 0.3)" in nlsf
    assert "it does not beat the best baseline" in igns
    text = format_long_range(table)
    assert "| every node |" in text and "70.0 (max 70)" in text
    assert len(plot_long_range(table).axes) == 1


def test_one_size_only_is_said():
    evaluations = synthetic({("small", "spatial"): [0.4], ("small", "nlsf_norm"): [0.3]})
    reach = pd.DataFrame([{"dataset": "small", "network": "0000", "nodes": 200, "bonds": 500, "diameter": 14, "mean_distance": 7.0}])
    table = long_range_table(evaluations, reach, {"small": {"networks": "small", "family": "f"}}, {"spatial": 2.0, "nlsf_norm": math.inf})
    assert verdicts(table) == ["f: one network size only, nothing to compare"]
