"""Training a simulator end to end on a few tiny compressed networks."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from densim.lammps import CompressionSettings
from densim.models import build_model
from densim.networks import DatasetConfig, generate_network, network_dataset
from densim.rollout import relative_mse, rollout, trajectory_graph
from densim.simulator import LearnedSimulator
from densim.spectra import spectra_dataset
from densim.training import (
    TrainingConfig,
    TrainingError,
    _batch_loss,
    _windows,
    compute_statistics,
    load_simulator,
    read_statistics,
    rollout_error,
    statistics_dataset,
    train,
)
from densim.trajectories import simulate, trajectory_dataset


@pytest.fixture(scope="module")
def graphs():
    config = DatasetConfig.from_dict("tiny", {"generator": "bond_pru_opt", "networks": 4, "nu_range": [-0.3, 0.3], "packing": {"nodes": 40}})
    settings = CompressionSettings(frames=16, steps_per_frame=100)
    result = []
    for index in range(config.networks):
        generated = generate_network(config, index)
        network_ds = network_dataset(config, index, generated, {})
        trajectory = trajectory_dataset(network_ds, settings, simulate(generated.network, settings, f"tiny/{index}"), {})
        result.append(trajectory_graph(trajectory, spectra_dataset(network_ds, k=8, dense_below=300, sigma=-1e-3)))
    return result


def make_simulator(graphs, config, model="spatial", **hyperparameters):
    torch.manual_seed(0)
    network = build_model(model, node_in=4, edge_in=4, out=2, **hyperparameters)
    return LearnedSimulator(network, 2, compute_statistics(graphs[:3], config), residual=config.residual)


CONFIG = TrainingConfig(horizon=12, steps=20, batch_size=2, validate_every=10)


def test_training_runs_and_reloaded_checkpoint_reproduces_its_metric(graphs, tmp_path):
    torch.manual_seed(0)
    sim = make_simulator(graphs, CONFIG)
    meta = {"name": "tiny", "model": "spatial", "hyperparameters": {}, "history": 2, "training": dataclasses.asdict(CONFIG)}
    history = train(sim, graphs[:3], graphs[3:], CONFIG, tmp_path, seed=0, metadata=meta)
    assert len(history["loss"]) == 20 and all(map(torch.isfinite, torch.tensor(history["loss"])))
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    # a fresh process rebuilds the simulator from the checkpoint alone and gets the same validation error
    script = (
        "import torch, sys; from densim.training import load_simulator, rollout_error; "
        "from tests.test_training import rebuild_validation; "
        f"sim, _ = load_simulator({str(tmp_path / 'best.pt')!r}); print(rollout_error(sim, rebuild_validation(), {CONFIG.horizon - 3}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) == pytest.approx(best["validation_rollout_error"], rel=1e-6)


def rebuild_validation():
    """The validation graph of the fixture, rebuilt deterministically in another process."""
    config = DatasetConfig.from_dict("tiny", {"generator": "bond_pru_opt", "networks": 4, "nu_range": [-0.3, 0.3], "packing": {"nodes": 40}})
    settings = CompressionSettings(frames=16, steps_per_frame=100)
    generated = generate_network(config, 3)
    network_ds = network_dataset(config, 3, generated, {})
    trajectory = trajectory_dataset(network_ds, settings, simulate(generated.network, settings, "tiny/3"), {})
    return [trajectory_graph(trajectory, spectra_dataset(network_ds, k=8, dense_below=300, sigma=-1e-3))]


def test_resume_continues_from_the_last_checkpoint(graphs, tmp_path):
    meta = {"name": "tiny", "model": "spatial", "hyperparameters": {}, "history": 2, "training": dataclasses.asdict(CONFIG)}
    short = dataclasses.replace(CONFIG, steps=10)
    train(make_simulator(graphs, short), graphs[:3], graphs[3:], short, tmp_path, 0, meta)
    history = train(make_simulator(graphs, CONFIG), graphs[:3], graphs[3:], CONFIG, tmp_path, 0, meta)
    assert history["step"] == list(range(1, 21))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(graphs, tmp_path):
    meta = {"name": "tiny", "model": "spatial", "hyperparameters": {}, "history": 2, "training": dataclasses.asdict(CONFIG)}
    short = dataclasses.replace(CONFIG, steps=10)
    train(make_simulator(graphs, short), graphs[:3], graphs[3:], short, tmp_path, 0, meta)
    good = (tmp_path / "last.pt").read_bytes()
    poisoned = [dataclasses.replace(g, positions=g.positions * float("nan")) for g in graphs[:3]]
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(make_simulator(graphs, CONFIG), poisoned, graphs[3:], CONFIG, tmp_path, 0, meta)
    assert (tmp_path / "last.pt").read_bytes() == good


def test_rollout_keeps_the_initial_frames_and_runs_the_full_length(graphs):
    sim = make_simulator(graphs, CONFIG)
    predicted = rollout(sim, graphs[0])
    assert predicted.shape == graphs[0].positions.shape
    assert torch.equal(predicted[:, :3], graphs[0].positions[:, :3])
    assert torch.isfinite(predicted).all()


def metadata(model, config=CONFIG):
    return {"name": "tiny", "model": model, "hyperparameters": {}, "history": 2, "training": dataclasses.asdict(config)}


def test_frozen_baseline_scores_relative_mse_exactly_one(graphs, tmp_path):
    sim = make_simulator(graphs, CONFIG, "frozen")
    train(sim, graphs[:3], graphs[3:], CONFIG, tmp_path, 0, metadata("frozen"))
    reloaded, _ = load_simulator(tmp_path / "best.pt")
    for graph in graphs:
        predicted = rollout(reloaded, graph)
        assert torch.equal(predicted[:, 3:], graph.positions[:, 2:3].expand(-1, graph.frames - 3, -1))
        ratio = relative_mse(predicted, graph.positions, history=2)
        assert ratio.shape == (graph.frames - 3,) and torch.all(ratio == 1.0)


def test_linear_floor_is_the_least_squares_optimum_and_beats_frozen(graphs, tmp_path):
    sim = make_simulator(graphs, CONFIG, "linear_floor")
    history = train(sim, graphs[:3], graphs[3:], CONFIG, tmp_path, 0, metadata("linear_floor"))
    assert history["step"] == [] and (tmp_path / "history.json").exists()
    windows = _windows(graphs[:3], 2, CONFIG.horizon)
    with torch.no_grad():
        fitted = _batch_loss(sim, graphs[:3], windows, None, 0.0).item()
        for _ in range(5):  # any other weights do worse on the training windows
            moved = make_simulator(graphs, CONFIG, "linear_floor")
            moved.load_state_dict(sim.state_dict())
            for parameter in moved.network.parameters():
                parameter.add_(1e-2 * torch.randn_like(parameter))
            assert _batch_loss(moved, graphs[:3], windows, None, 0.0).item() > fitted
    for graph in graphs[3:]:
        assert relative_mse(rollout(sim, graph), graph.positions, 2).mean() < 1.0


def test_multi_step_loss_is_the_mean_one_step_loss_along_the_simulators_own_rollout(graphs):
    sim = make_simulator(graphs, CONFIG)
    sim.eval()
    graph, h, steps = graphs[0], 2, 3
    with torch.no_grad():
        unrolled = _batch_loss(sim, [graph], [(0, h)], None, 0.0, loss_steps=steps)
        predicted = rollout(sim, graph, steps=steps - 1)  # frames 0..h+steps-1; the last `steps - 1` predicted
        singles = []
        for offset in range(steps):
            frames = torch.cat([predicted[:, offset : offset + h + 1], graph.positions[:, offset + h + 1 : offset + h + 2]], dim=1)
            box_x = graph.box[offset : offset + h + 2, 0]
            state = frames[:, :-1]
            from densim.rollout import estimated_box

            prediction = sim(graph.graph, state, estimated_box(graph, state[:, -1], graph.box[offset + h, 0]), box_x[:-1], graph.centre_x)
            target = sim.target(frames, box_x, graph.centre_x).to(prediction.dtype)
            singles.append(torch.mean((prediction - target) ** 2))
    torch.testing.assert_close(unrolled, torch.stack(singles).mean(), rtol=1e-6, atol=0)


def test_training_with_a_multi_step_loss_runs(graphs, tmp_path):
    config = dataclasses.replace(CONFIG, steps=4, validate_every=2, loss_steps=3, noise_std=1e-4)
    history = train(make_simulator(graphs, config), graphs[:3], graphs[3:], config, tmp_path, 0, metadata("spatial", config))
    assert len(history["loss"]) == 4 and all(map(torch.isfinite, torch.tensor(history["loss"])))


def test_statistics_round_trip_through_netcdf_and_bad_files_are_named(graphs, tmp_path):
    from densim.io import DensimFileError, write_dataset

    statistics = compute_statistics(graphs[:3], CONFIG)
    path = write_dataset(statistics_dataset(statistics, {}), tmp_path / "stats.nc")
    for name, value in vars(read_statistics(path)).items():
        assert torch.equal(value, getattr(statistics, name).to(torch.float64)), name
    (tmp_path / "broken.nc").write_bytes(b"not netcdf")
    with pytest.raises(DensimFileError, match="broken.nc"):
        read_statistics(tmp_path / "broken.nc")


def test_same_seed_trains_bitwise_identical_models_and_another_seed_does_not(graphs, tmp_path):
    config = dataclasses.replace(CONFIG, steps=6, validate_every=3, noise_std=1e-4)
    states = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        sim = make_simulator(graphs, config, "nlsf_norm", num_modes=8)
        train(sim, graphs[:3], graphs[3:], config, tmp_path / run, seed, metadata("nlsf_norm", config))
        states[run] = sim.state_dict()
    assert all(torch.equal(states["a"][name], states["b"][name]) for name in states["a"])
    assert not all(torch.equal(states["a"][name], states["c"][name]) for name in states["a"])


@pytest.mark.parametrize(("model", "history", "message"), [
    ("gcn", 2, "model 'gcn': unknown model 'gcn'; known models: spatial"),
    ("nlsf", 0, "model 'nlsf': node_in must be a positive integer"),
    ("frozen", 2, "statistics.nc: no such file"),
])
def test_train_fit_names_a_bad_model_or_a_missing_file_before_training(tmp_path, model, history, message):
    from densim.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["train", "fit", "--dataset", "d", "--model", model, "--history", str(history), "--seed", "0",
              "--split", str(tmp_path / "split.json"), "--statistics", str(tmp_path / "statistics.nc"), "-o", str(tmp_path / "out")])
    assert message in str(stop.value)
    assert not (tmp_path / "out").exists()
