"""The fidelity report's claim verdicts, decided from evaluation tables whose outcome is known by construction,
and the study's tables as shipped."""

import numpy as np
import pandas as pd

from densim.fidelity import STUDY_DATASETS, claims, fidelity_report, study_tables


def frame(r2: dict, spread: float = 0.01, seeds: int = 3, history: int = 2) -> pd.DataFrame:
    """Evaluation rows at steps 1..60: model -> dataset -> mean R² (seeds spread evenly by ``spread`` about it)."""
    rows = []
    for model, by_dataset in r2.items():
        for dataset, mean in by_dataset.items():
            for seed, offset in enumerate(np.linspace(-spread, spread, seeds)):
                for step in range(1, 61):
                    rows.append({"dataset": dataset, "model": model, "history": history, "seed": seed, "protocol": "compression",
                                 "step": step, "table_step": 50, "rollouts": 40, "l2": 0.05, "poisson_r2": mean + offset,
                                 "blown_up_count": 0, "arrival_error": np.nan})
    return pd.DataFrame(rows)


def test_the_study_tables_hold_both_tables_for_nine_models_on_four_datasets():
    table = study_tables()
    assert len(table) == 2 * 9 * 4 and set(table["dataset"]) == set(STUDY_DATASETS)
    nlsf_norm = table[(table["table"] == "poisson_r2") & (table["model"] == "nlsf_norm")].set_index("dataset")["mean"]
    assert nlsf_norm.to_dict() == {"node_opt": 0.967, "comb": 0.956, "bond_pru_opt": 0.957, "noi_pru": 0.850}


def test_claims_that_hold_by_construction_are_held():
    data = frame({"nlsf_norm": {"node_opt": 0.9, "comb": 0.9, "bond_pru_opt": 0.9, "noi_pru": 0.9},
                  "spatial": {"node_opt": 0.8, "comb": 0.8, "bond_pru_opt": 0.8, "noi_pru": 0.2},
                  "chebnet": {"node_opt": 0.85, "comb": 0.8, "bond_pru_opt": 0.8, "noi_pru": 0.2}})
    result = claims(data, None)
    assert [verdict for _, verdict, _ in result] == ["**held**", "**held**", "**held**", "**could not be tested**"]


def test_a_tie_within_the_seeds_spread_or_a_missing_dataset_is_not_a_win():
    tie = frame({"nlsf_norm": {d: 0.9 for d in STUDY_DATASETS}, "spatial": {**{d: 0.8 for d in STUDY_DATASETS}, "comb": 0.89}}, spread=0.01)
    assert claims(tie, None)[0][1] == "**did not hold**"
    partial = frame({"nlsf_norm": {"noi_pru": 0.9}, "spatial": {"noi_pru": 0.2}})
    first, second = claims(partial, None)[:2]
    assert first[1] == second[1] == "**could not be tested**"


def test_history_one_validity_and_the_report_put_together():
    data = frame({"nlsf_norm": {d: 0.9 for d in STUDY_DATASETS}, "spatial": {d: 0.8 for d in STUDY_DATASETS}})
    ablation = pd.concat([frame({"nlsf_norm": {"noi_pru": 0.5}, "spatial": {"noi_pru": -0.5}}, history=1),
                          frame({"nlsf_norm": {"noi_pru": 0.9}, "spatial": {"noi_pru": 0.8}}, history=2)])
    assert claims(data, ablation)[3][1] == "**held**"
    ablation.loc[(ablation["model"] == "nlsf_norm") & (ablation["history"] == 1), "blown_up_count"] = 1
    assert claims(data, ablation)[3][1] == "**did not hold**"
    report = fidelity_report(data, ablation, [50, 60])
    assert "## Table 2: Poisson ratio R² at step 60" in report and "| NOI-PRU | NLSF (norm) | 0.9 ± 0.01 | 3 | 0/120 | 0.85 ± 0.041 |" in report
