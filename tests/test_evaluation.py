"""Rollout evaluation: each metric against a hand computation, and the rollouts it scores."""

import math

import numpy as np
import pytest
import torch

from densim.evaluation import EvaluationConfig, across_trajectories, evaluate, mode_energies, positional_errors, score_trajectory
from densim.io import read_evaluation, write_evaluation
from densim.models import build_simulator
from densim.simulator import FrozenSimulator
from densim.training import TrainingConfig, compute_statistics


def test_positional_errors_by_hand():
    # node 0 is off by (3, 4) then (0, 1); node 1 by (0, 0) then (1, 0)
    truth = torch.zeros(2, 2, 2, dtype=torch.float64)
    predicted = torch.tensor([[[3.0, 4.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    errors = positional_errors(predicted, truth)
    np.testing.assert_allclose(errors["l2"], [(5 + 0) / 2, (1 + 1) / 2])
    np.testing.assert_allclose(errors["rms"], [math.sqrt(25 / 2), 1.0])
    np.testing.assert_allclose(errors["mse"], [25 / 2, 1.0])


def test_mode_energies_by_hand():
    # three nodes; the first two modes are orthonormal, the third is padding (all zero)
    vectors = torch.tensor([[1, 1, 0], [1, -1, 0], [0, 0, 0]], dtype=torch.float64) / torch.tensor([math.sqrt(2), math.sqrt(2), 1])
    error = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 2.0]]], dtype=torch.float64)  # (N=3, S=1, 2)
    energy, share = mode_energies(error, vectors)
    # u0 . e_x = 1/sqrt2, u0 . e_y = 0 -> 1/2; u1 likewise 1/2; |e|^2 = 1 + 4
    np.testing.assert_allclose(energy[0, :2], [0.5, 0.5])
    assert np.isnan(energy[0, 2])
    np.testing.assert_allclose(share, [1.0 / 5.0])


def stacked(scores):
    """Per-trajectory scores as (trajectory, step) arrays."""
    return {name: np.stack([score[name] for score in scores]) for name in scores[0]}


def test_poisson_r2_of_the_truth_against_itself_is_one_and_bias_and_relative_mse_by_hand():
    truth = np.array([[0.1, 0.2], [-0.3, 0.0], [0.4, 0.5]])
    scores = [{"mse": np.array([1.0, 2.0]), "frozen_mse": np.array([4.0, 4.0]), "poisson_ratio": nu, "poisson_ratio_true": nu,
               "blown_up": np.array([False, False])} for nu in truth]
    summary = across_trajectories(stacked(scores))
    np.testing.assert_array_equal(summary["poisson_r2"], [1.0, 1.0])
    np.testing.assert_array_equal(summary["poisson_bias"], [0.0, 0.0])
    np.testing.assert_allclose(summary["relative_mse"], [3 / 12, 6 / 12])
    # shift every prediction by 0.1: bias 0.1, R^2 = 1 - n 0.01 / SST
    for score in scores:
        score["poisson_ratio"] = score["poisson_ratio_true"] + 0.1
    shifted = across_trajectories(stacked(scores))
    np.testing.assert_allclose(shifted["poisson_bias"], [0.1, 0.1])
    sst = ((truth - truth.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(shifted["poisson_r2"], 1 - 3 * 0.01 / sst)


def test_the_frozen_baseline_scores_relative_mse_one_at_every_step(graphs):
    simulator = build_simulator("frozen", 2, compute_statistics(graphs[:3], TrainingConfig(horizon=12)), seed=0)
    scores = evaluate(simulator, graphs)
    assert scores.sizes["step"] == graphs[0].frames - 3
    np.testing.assert_array_equal(scores["relative_mse"], 1.0)
    np.testing.assert_array_equal(scores["mse"], scores["frozen_mse"])


def test_constant_velocity_is_exact_on_uniform_motion_and_extrapolates_a_real_trajectory(graphs):
    from dataclasses import replace

    simulator = build_simulator("constant_velocity", 2, compute_statistics(graphs[:3], TrainingConfig(horizon=12)), seed=0)
    # every node drifting at its own constant velocity: predicted exactly
    real = graphs[0]
    frames = torch.arange(real.frames, dtype=torch.float64)[None, :, None]
    uniform = replace(real, positions=real.positions[:, :1] + 0.01 * frames * torch.randn(real.positions.shape[0], 1, 2, dtype=torch.float64))
    assert float(evaluate(simulator, [uniform], EvaluationConfig(table_step=1))["mse"].max()) < 1e-24
    # a LAMMPS trajectory: frame last + s is last + s (last - previous), by hand
    scores = evaluate(simulator, [real])
    last = int(scores.attrs["start_frame"])
    x = real.positions.numpy()
    s = np.arange(1, real.frames - last)
    by_hand = x[:, last][:, None] + s[None, :, None] * (x[:, last] - x[:, last - 1])[:, None]
    np.testing.assert_allclose(scores["mse"].values[0], ((by_hand - x[:, last + 1:]) ** 2).sum(-1).mean(0), rtol=1e-10)


def test_a_common_start_frame_makes_every_history_predict_the_same_frames(graphs):
    """With evaluation.start_frame, histories 1 and 3 are scored on the same predicted frames (the frozen baseline
    holds frame start_frame whatever its history: identical scores); without it, on frames shifted by the history."""
    statistics = compute_statistics(graphs[:3], TrainingConfig(horizon=12))
    one, three = (build_simulator("frozen", h, statistics, seed=0) for h in (1, 3))
    common = EvaluationConfig(start_frame=4)
    a, b = evaluate(one, graphs, common), evaluate(three, graphs, common)
    assert a.sizes["step"] == b.sizes["step"] == graphs[0].frames - 5 and a.attrs["start_frame"] == b.attrs["start_frame"] == 4
    np.testing.assert_array_equal(a["l2"].values, b["l2"].values)
    own_a, own_b = evaluate(one, graphs), evaluate(three, graphs)
    assert own_a.sizes["step"] - own_b.sizes["step"] == 2 and not np.array_equal(own_a["l2"].values[:, :5], own_b["l2"].values[:, :5])
    with pytest.raises(ValueError, match="evaluation.start_frame 2 leaves fewer input frames than the history 3"):
        evaluate(three, graphs, EvaluationConfig(start_frame=2))


class Exploding(FrozenSimulator):
    """Holds the last frame, but pushes trajectory 0 off by 10 diameters from the 4th step on and makes
    trajectory 1 non-finite from the 6th."""

    def step(self, trajectories, states, lasts):
        held, outputs = super().step(trajectories, states, lasts)
        step = lasts[0] - self.history + 1
        for i, trajectory in enumerate(trajectories):
            if trajectory.name == "tiny/0000" and step == 4:
                held[i] = held[i] + 10.0
            if trajectory.name == "tiny/0001" and step == 6:
                held[i] = held[i] * float("nan")
        return held, outputs


def test_a_blown_up_rollout_is_flagged_and_kept_not_dropped(graphs, tmp_path):
    simulator = build_simulator("frozen", 2, compute_statistics(graphs[:3], TrainingConfig(horizon=12)), seed=0)
    simulator.__class__ = Exploding  # the frozen baseline, with the faults above
    labels = {"dataset": "tiny", "model": "frozen", "seed": 0}
    path = write_evaluation(evaluate(simulator, graphs, EvaluationConfig(table_step=5), attrs=labels), tmp_path / "eval.nc")
    scores = read_evaluation(path)
    assert list(scores["trajectory"].values) == ["tiny/0000", "tiny/0001", "tiny/0002", "tiny/0003"]
    blown = scores["blown_up"].values
    np.testing.assert_array_equal(blown[0], scores["step"].values >= 4)  # finite but 10 diameters off
    np.testing.assert_array_equal(blown[1], scores["step"].values >= 6)  # non-finite
    assert not blown[2:].any()
    assert np.isnan(scores["l2"].values[1, 5:]).all() and np.isfinite(scores["l2"].values[1, :5]).all()
    assert scores["l2"].values[0, 3] > 10  # the raw number is kept
    np.testing.assert_array_equal(scores["blown_up_count"], blown.sum(0))
    # across trajectories: the non-finite rollout leaves the ratio of means, the others stay in it
    finite = np.isfinite(scores["mse"].values)
    expected = np.where(finite, scores["mse"], 0).sum(0) / np.where(finite, scores["frozen_mse"], 0).sum(0)
    np.testing.assert_allclose(scores["relative_mse"], expected)
    # predicted positions at the table step and the last step are kept, NaN where the rollout is
    assert list(scores["kept_step"].values) == [5, scores.sizes["step"]]
    assert np.isnan(scores["predicted_positions"].values[1, 1]).all()


def test_batched_evaluation_equals_one_trajectory_at_a_time(graphs):
    config = TrainingConfig(horizon=12)
    simulator = build_simulator("nlsf_norm", 2, compute_statistics(graphs[:3], config), seed=0, hyperparameters={"num_modes": 8})
    together, alone = evaluate(simulator, graphs), evaluate(simulator, graphs, batched=False)
    for name in ("l2", "rms", "poisson_ratio", "slow_share", "mode_energy", "predicted_positions"):
        np.testing.assert_allclose(together[name], alone[name], rtol=1e-6, atol=1e-10, err_msg=name)


def test_scores_on_the_truth_itself(graphs):
    """A perfect rollout: zero error, the estimator's Poisson ratio, and R^2 near 1 across trajectories."""
    graph = graphs[0]
    scores = score_trajectory(graph.positions, graph, 2, 1.0)
    np.testing.assert_array_equal(scores["l2"], 0.0)
    # measured from the last input frame: one frame of strain at step 1 amplifies the estimator's offset from the box
    # (6.5e-3 here), which the growing strain shrinks
    np.testing.assert_allclose(scores["poisson_ratio"][:1], scores["poisson_ratio_true"][:1], atol=1e-2)
    np.testing.assert_allclose(scores["poisson_ratio"][1:], scores["poisson_ratio_true"][1:], atol=5e-3)
    assert not scores["blown_up"].any()


def test_unknown_or_bad_evaluation_settings_name_the_key():
    from densim.config import ConfigError
    from densim.evaluation import evaluation_config

    with pytest.raises(ConfigError, match="evaluation.table_step"):
        evaluation_config({"table_step": 0})
    with pytest.raises(ConfigError, match="evaluation.steps: unknown key"):
        evaluation_config({"steps": 3})


def test_rollouts_start_at_the_trajectories_own_rollout_start_and_the_file_says_where(graphs):
    import dataclasses

    from densim.observables import r_squared

    test = [dataclasses.replace(g, rollout_start=6, uniaxial_poisson_ratio=nu) for g, nu in zip(graphs, (-0.2, 0.1, 0.3, 0.0))]
    ds = evaluate(build_simulator("frozen", 2, compute_statistics(graphs[:3], TrainingConfig(horizon=12)), seed=0), test)
    assert ds.attrs["start_frame"] == 6 and ds.sizes["step"] == test[0].frames - 7
    assert ds.attrs["start_time"] == pytest.approx(6 * test[0].frame_time)
    strain = float(test[0].box[6 + ds.attrs["table_step"], 0] / test[0].box[0, 0] - 1)
    assert ds.attrs["table_strain"] == pytest.approx(strain, rel=0.5) and ds.attrs["table_strain"] < 0
    truth = ds["poisson_ratio_true"].sel(step=3).values
    assert float(ds["oracle_poisson_r2"].sel(step=3)) == pytest.approx(r_squared(truth, np.array([-0.2, 0.1, 0.3, 0.0])))


def test_an_evaluation_in_groups_holds_one_group_at_a_time_and_scores_the_same(graphs):
    """``evaluation.rollouts_at_once``: from a :class:`TrajectoryFiles`, each trajectory is read once for its header and
    once when its group's turn comes, never more than a group is held, and every number is that of all at once."""
    import weakref
    from dataclasses import replace

    from densim.rollout import TrajectoryFiles

    simulator = build_simulator("spatial", 2, compute_statistics(graphs[:3], TrainingConfig(horizon=12)), seed=0,
                                hyperparameters={"hidden": 8, "num_layers": 1})
    reads, live, peak = [], set(), [0]

    def loader(index):
        def load():
            graph = replace(graphs[index])  # a new object per read, as reading its files makes
            reads.append(index)
            live.add(id(graph))
            weakref.finalize(graph, live.discard, id(graph))
            peak[0] = max(peak[0], len(live))
            return graph
        return load

    files = TrajectoryFiles([loader(i) for i in range(len(graphs))])
    assert reads == [0, 1, 2, 3] and not live  # the headers, each read and let go
    grouped = evaluate(simulator, files, EvaluationConfig(rollouts_at_once=2))
    assert reads == [0, 1, 2, 3, 0, 1, 2, 3] and peak[0] == 2 and not live
    together = evaluate(simulator, graphs)
    assert list(grouped.data_vars) == list(together.data_vars) and grouped.attrs.keys() == together.attrs.keys()
    for name in together.data_vars:
        np.testing.assert_allclose(grouped[name], together[name], rtol=1e-6, atol=1e-10, err_msg=name)
