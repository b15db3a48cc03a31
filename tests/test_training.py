"""Training a simulator end to end on a few tiny compressed networks."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from densim.md import MDSettings
from densim.config import ConfigError
from densim.evaluation import evaluate
from densim.io import read_checkpoint
from densim.models import build_simulator, load_simulator
from densim.networks import DatasetConfig, generate_network, network_dataset
from densim.provenance import config_hash
from densim.rollout import rollout, rollouts
from densim.spectra import spectra_dataset
from densim.training import TrainingConfig, TrainingError, _windows, compute_statistics, describe_run, train
from densim.trajectories import simulate, trajectory_dataset
from tests.conftest import tiny_graphs


def make_simulator(graphs, config, model="spatial", seed=0, **hyperparameters):
    return build_simulator(model, 2, compute_statistics(graphs[:3], config), seed=seed, hyperparameters=hyperparameters, **config.family)


def fit(simulator, graphs, config, out, model="spatial", seed=0, train_set=None):
    """Train on the first three graphs, validate on the fourth."""
    run = describe_run(model, simulator, seed, config, {})
    return train(simulator, graphs[:3] if train_set is None else train_set, graphs[3:], config, out, run)


CONFIG = TrainingConfig(horizon=12, steps=20, batch_size=2, validate_every=10)


def test_training_runs_and_reloaded_checkpoint_reproduces_its_metric(graphs, tmp_path):
    history = fit(make_simulator(graphs, CONFIG), graphs, CONFIG, tmp_path)
    assert len(history["loss"]) == 20 and all(map(torch.isfinite, torch.tensor(history["loss"])))
    best = read_checkpoint(tmp_path / "best.pt")
    # a fresh process rebuilds the simulator from the checkpoint alone and gets the same validation error
    script = (
        "import torch, sys; from densim.models import load_simulator; from densim.training import TrainingConfig, validate; "
        "from tests.test_training import rebuild_validation; "
        f"sim, _ = load_simulator({str(tmp_path / 'best.pt')!r}); print(validate(sim, rebuild_validation(), TrainingConfig(horizon={CONFIG.horizon}))['rollout_error'])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) == pytest.approx(best["validation_rollout_error"], rel=1e-6)


def rebuild_validation():
    """The validation graph of the fixture, rebuilt deterministically in another process."""
    return tiny_graphs([3])


def test_resume_continues_from_the_last_checkpoint_of_the_same_run(graphs, tmp_path, caplog):
    short = dataclasses.replace(CONFIG, steps=20, validate_every=10)
    checkpoint = tmp_path / "last.pt"
    # stop after step 10 by training a copy of the run to 10 steps under the same run description
    simulator = make_simulator(graphs, short)
    run = describe_run("spatial", simulator, 0, short, {})
    train(simulator, graphs[:3], graphs[3:], dataclasses.replace(short, steps=10), tmp_path, run)
    assert read_checkpoint(checkpoint)["step"] == 10
    with caplog.at_level("INFO", logger="densim.training"):
        history = train(make_simulator(graphs, short), graphs[:3], graphs[3:], short, tmp_path, run)
    assert "resuming from" in caplog.text and history["step"] == list(range(1, 21))


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_weights_as_an_uninterrupted_run(graphs, tmp_path):
    config = dataclasses.replace(CONFIG, noise=0.5)
    straight = make_simulator(graphs, config)
    fit(straight, graphs, config, tmp_path / "straight")

    killed = make_simulator(graphs, config)
    calls = {"n": 0}
    loss = killed.loss

    def dying_loss(*args, **kwargs):  # the process dies in step 13, after the checkpoint of step 10
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return loss(*args, **kwargs)

    killed.loss = dying_loss
    with pytest.raises(KeyboardInterrupt):
        fit(killed, graphs, config, tmp_path / "killed")
    assert read_checkpoint(tmp_path / "killed/last.pt")["step"] == 10
    (tmp_path / "killed/best.pt").unlink()  # what Snakemake does to the outputs of a job it was killed in
    resumed = make_simulator(graphs, config)
    history = fit(resumed, graphs, config, tmp_path / "killed")
    assert history["step"] == list(range(1, 21))
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    best, best_resumed = read_checkpoint(tmp_path / "straight/best.pt"), read_checkpoint(tmp_path / "killed/best.pt")
    assert best["step"] == best_resumed["step"]
    for name, value in best["simulator"].items():
        assert torch.equal(value, best_resumed["simulator"][name]), name


def test_a_checkpoint_of_another_run_is_not_resumed_and_the_log_says_why(graphs, tmp_path, caplog):
    fit(make_simulator(graphs, CONFIG, hidden=8), graphs, CONFIG, tmp_path)
    old = read_checkpoint(tmp_path / "last.pt")
    with caplog.at_level("INFO", logger="densim.training"):
        history = fit(make_simulator(graphs, CONFIG, hidden=16), graphs, CONFIG, tmp_path)
    assert "from another run" in caplog.text and "hyperparameters" in caplog.text and "training from step 0" in caplog.text
    assert history["step"] == list(range(1, 21))
    new = read_checkpoint(tmp_path / "best.pt")
    assert new["run"]["hyperparameters"]["hidden"] == 16 and new["hash"] == config_hash(new["run"]) != old["hash"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(graphs, tmp_path):
    simulator = make_simulator(graphs, CONFIG)
    run = describe_run("spatial", simulator, 0, CONFIG, {})
    train(simulator, graphs[:3], graphs[3:], dataclasses.replace(CONFIG, steps=10), tmp_path, run)
    good = (tmp_path / "last.pt").read_bytes()
    poisoned = [dataclasses.replace(g, positions=g.positions * float("nan")) for g in graphs[:3]]
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(make_simulator(graphs, CONFIG), poisoned, graphs[3:], CONFIG, tmp_path, run)
    assert (tmp_path / "last.pt").read_bytes() == good


def test_rollout_keeps_the_initial_frames_and_runs_the_full_length(graphs):
    sim = make_simulator(graphs, CONFIG)
    predicted = rollout(sim, graphs[0])
    assert predicted.shape == graphs[0].positions.shape
    assert torch.equal(predicted[:, :3], graphs[0].positions[:, :3])
    assert torch.isfinite(predicted).all()


@pytest.mark.parametrize("model, hyperparameters", [("nlsf_norm", {"num_modes": 8}), ("igns", {})])
def test_batched_rollouts_and_steps_equal_one_trajectory_at_a_time(graphs, model, hyperparameters):
    """Features, boxes (one batched zero-stress solve) and integration of several trajectories at once, of both
    protocols and at different frames, are each trajectory's own."""
    graph = graphs[1].graph.clone()
    graph.rest_length = 1.5 * graph.rest_length
    larger = dataclasses.replace(graphs[1], graph=graph, positions=1.5 * graphs[1].positions, box=1.5 * graphs[1].box,
                                 centre_x=1.5 * graphs[1].centre_x)  # the same network scaled: another box
    mixed = [graphs[0], larger, graphs[2], dataclasses.replace(graphs[3], protocol="impact")]
    sim = make_simulator(graphs, CONFIG, model, **hyperparameters)
    together = rollouts(sim, mixed, steps=6)
    for graph, batched in zip(mixed, together):
        # the network runs in float32: batching may change its last bits, far below a frame's motion (~1e-4)
        torch.testing.assert_close(batched, rollout(sim, graph, steps=6), rtol=0, atol=1e-8)
    lasts = [2, 5, 9, 4]
    states = [sim.initial_state(graph, last) for graph, last in zip(mixed, lasts)]
    stepped, outputs = sim.step(mixed, states, lasts)
    for graph, state, last, batched, output in zip(mixed, states, lasts, stepped, outputs):
        alone, (alone_output,) = sim.step([graph], [state], [last])
        torch.testing.assert_close(sim.positions(batched), sim.positions(alone[0]), rtol=0, atol=1e-8)
        torch.testing.assert_close(output, alone_output, rtol=1e-4, atol=1e-5)


def test_frozen_baseline_scores_relative_mse_exactly_one(graphs, tmp_path):
    fit(make_simulator(graphs, CONFIG, "frozen"), graphs, CONFIG, tmp_path, "frozen")
    reloaded, _ = load_simulator(tmp_path / "best.pt")
    for graph in graphs:
        predicted = rollout(reloaded, graph)
        assert torch.equal(predicted[:, 3:], graph.positions[:, 2:3].expand(-1, graph.frames - 3, -1))
    scores = evaluate(reloaded, graphs)
    assert scores.sizes["step"] == graphs[0].frames - 3
    assert (scores["relative_mse"] == 1.0).all() and (scores["mse"] == scores["frozen_mse"]).all()


def test_linear_floor_is_the_least_squares_optimum_and_beats_frozen(graphs, tmp_path):
    sim = make_simulator(graphs, CONFIG, "linear_floor")
    history = fit(sim, graphs, CONFIG, tmp_path, "linear_floor")
    assert history["step"] == [] and (tmp_path / "history.json").exists()
    windows = _windows(graphs[:3], 2, CONFIG)
    with torch.no_grad():
        fitted = sim.loss(graphs[:3], windows).item()
        for _ in range(5):  # any other weights do worse on the training windows
            moved = make_simulator(graphs, CONFIG, "linear_floor")
            moved.load_state_dict(sim.state_dict())
            for parameter in moved.network.parameters():
                parameter.add_(1e-2 * torch.randn_like(parameter))
            assert moved.loss(graphs[:3], windows).item() > fitted
    assert evaluate(sim, graphs[3:])["relative_mse"].mean() < 1.0


def test_multi_step_loss_is_the_mean_one_step_loss_along_the_simulators_own_rollout(graphs):
    sim = make_simulator(graphs, CONFIG)
    sim.eval()
    graph, h, steps = graphs[0], 2, 3
    with torch.no_grad():
        unrolled = sim.loss([graph], [(0, h)], steps)
        predicted = rollout(sim, graph, steps=steps - 1)  # frames 0..h+steps-1; the last `steps - 1` predicted
        singles = []
        for offset in range(steps):
            state, last = predicted[:, offset : offset + h + 1], offset + h
            prediction = sim.step([graph], [state], [last])[1][0]
            target = sim.target(graph, state, last).to(prediction.dtype)
            singles.append(torch.mean((prediction - target) ** 2))
    torch.testing.assert_close(unrolled, torch.stack(singles).mean(), rtol=1e-6, atol=0)


def test_training_with_a_multi_step_loss_runs(graphs, tmp_path):
    config = dataclasses.replace(CONFIG, steps=4, validate_every=2, loss_steps=3, noise=0.5)
    history = fit(make_simulator(graphs, config), graphs, config, tmp_path)
    assert len(history["loss"]) == 4 and all(map(torch.isfinite, torch.tensor(history["loss"])))


def test_statistics_round_trip_through_netcdf_and_bad_files_are_named(graphs, tmp_path):
    from densim.io import DensimFileError, read_statistics, write_statistics

    statistics = compute_statistics(graphs[:3], CONFIG)
    path = write_statistics(statistics, tmp_path / "stats.nc", {})
    for name, value in vars(read_statistics(path)).items():
        assert torch.equal(value, getattr(statistics, name).to(torch.float64)), name
    (tmp_path / "broken.nc").write_bytes(b"not netcdf")
    with pytest.raises(DensimFileError, match="broken.nc"):
        read_statistics(tmp_path / "broken.nc")


def test_same_seed_trains_bitwise_identical_models_and_another_seed_does_not(graphs, tmp_path):
    config = dataclasses.replace(CONFIG, steps=6, validate_every=3, noise=0.5)
    states = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        sim = make_simulator(graphs, config, "nlsf_norm", seed=seed, num_modes=8)
        fit(sim, graphs, config, tmp_path / run, "nlsf_norm", seed)
        states[run] = sim.state_dict()
    assert all(torch.equal(states["a"][name], states["b"][name]) for name in states["a"])
    assert not all(torch.equal(states["a"][name], states["c"][name]) for name in states["a"])


def test_a_checkpoint_holding_a_pickled_object_is_refused_naming_the_file(tmp_path):
    from densim.io import CHECKPOINT_FORMAT, DensimFileError

    marker = tmp_path / "code-ran"

    class Payload:  # unpickling it would create the marker file
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"format": CHECKPOINT_FORMAT, "run": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(DensimFileError, match=r"evil\.pt: refused"):
        load_simulator(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"simulator": {}}, tmp_path / "foreign.pt")
    with pytest.raises(DensimFileError, match="foreign.pt: not a densim checkpoint"):
        load_simulator(tmp_path / "foreign.pt")


@pytest.mark.parametrize(("model", "history", "message"), [
    ("gcn", 2, "--model: unknown model 'gcn'; known models: spatial"),
    ("nlsf", 0, "models.nlsf: node_in must be a positive integer"),
    ("igns@loss_steps=30", 2, "training.horizon: 20 frames leave no training window for igns@loss_steps=30 at history 2"),
    ("frozen", 2, "statistics.nc: no such file"),
])
def test_train_fit_names_a_bad_model_or_a_missing_file_before_training(tmp_path, model, history, message):
    from densim.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["training", "fit", "--dataset", "d", "--model", model, "--history", str(history), "--seed", "0",
              "--split", str(tmp_path / "split.json"), "--statistics", str(tmp_path / "statistics.nc"),
              "--trajectories", str(tmp_path / "d/0000.nc"), "--spectra", str(tmp_path / "d/0000.nc"), "-o", str(tmp_path / "out")])
    assert message in str(stop.value)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The fixture's networks as trajectory and spectra files, a split, and its statistics (by the CLI)."""
    from densim.io import write_json, write_spectra, write_trajectory

    root = tmp_path_factory.mktemp("files")
    config = DatasetConfig.from_dict("tiny", {"generator": "bond_pru_opt", "networks": 4, "nu_range": [-0.3, 0.3], "packing": {"nodes": 40}})
    settings = MDSettings(frames=16, steps_per_frame=100)
    for index in range(config.networks):
        generated = generate_network(config, index)
        network_ds = network_dataset(config, index, generated, {})
        run = simulate(generated.network, settings, f"tiny/{index}")
        write_trajectory(trajectory_dataset(network_ds, settings, run, {}), root / f"trajectories/tiny/{index:04d}.nc")
        write_spectra(spectra_dataset(network_ds, k=8), root / f"spectra/tiny/{index:04d}.nc")
    write_json({"train": ["tiny/0000", "tiny/0001", "tiny/0002"], "validation": ["tiny/0003"], "test": []}, root / "split.json")
    spec = json.dumps({"training": {"horizon": 12, "steps": 2, "batch_size": 2, "validate_every": 1}})
    trajectories = [str(p) for p in sorted((root / "trajectories/tiny").glob("*.nc"))]
    densim(["training", "statistics", "--dataset", "tiny", "--split", str(root / "split.json"), "--trajectories", *trajectories,
            "--spec", spec, "-o", str(root / "stats.nc")], root)
    return root, spec, trajectories


def densim(args, cwd):
    """Run the densim command in a fresh process."""
    result = subprocess.run([sys.executable, "-m", "densim.cli", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def fit_command(files, seed, out, model="spatial"):
    root, spec, trajectories = files
    spectra = [str(p) for p in sorted((root / "spectra/tiny").glob("*.nc"))]
    return ["training", "fit", "--dataset", "tiny", "--model", model, "--history", "2", "--seed", str(seed), "--split", str(root / "split.json"),
            "--statistics", str(root / "stats.nc"), "--trajectories", *trajectories, "--spectra", *spectra, "--spec", spec, "-o", str(out)]


def test_the_seed_seeds_the_initial_weights_through_the_command_in_fresh_processes(files, tmp_path):
    from densim.io import read_statistics
    from densim.models import parameters_digest

    digests = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        densim(fit_command(files, seed, tmp_path / run), tmp_path)
        digests[run] = read_checkpoint(tmp_path / run / "best.pt")["initial_parameters"]
    assert digests["a"] == digests["b"] != digests["c"]
    # and they are the weights build_simulator draws from that seed
    statistics = read_statistics(files[0] / "stats.nc")
    assert digests["c"] == parameters_digest(build_simulator("spatial", 2, statistics, seed=1))


def test_the_command_leaves_nothing_in_the_temporary_folder(files, tmp_path):
    """PyTorch Geometric writes a module per message-passing class to the temporary folder: the command's own
    scratch folder takes them and goes when it ends."""
    import os

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "densim.cli", *fit_command(files, 0, tmp_path / "out", model="s2_chebnet")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out/best.pt").exists() and list(scratch.iterdir()) == []


def test_the_command_reads_only_the_files_it_is_given(files, tmp_path):
    command = fit_command(files, 0, tmp_path / "out")
    missing = command.index("--spectra") + 2  # drop the spectra of tiny/0001, a train network
    result = subprocess.run([sys.executable, "-m", "densim.cli", *command[:missing], *command[missing + 1 :]], capture_output=True, text=True)
    assert result.returncode != 0
    assert "names network tiny/0001, but no --spectra file is tiny/0001.nc" in result.stderr


def test_the_evaluate_command_scores_each_checkpoint_into_one_folder_and_refuses_another_seed_or_an_empty_test_split(files, tmp_path):
    import xarray as xr

    from densim.io import write_json

    root, _, trajectories = files
    for model in ("frozen", "constant_velocity"):
        densim(fit_command(files, 0, tmp_path / model, model=model), tmp_path)
    spectra = [str(p) for p in sorted((root / "spectra/tiny").glob("*.nc"))]
    split = write_json({"train": ["tiny/0000", "tiny/0001"], "validation": ["tiny/0002"], "test": ["tiny/0003"]}, tmp_path / "split.json")
    output = tmp_path / "eval"
    command = ["evaluation", str(tmp_path / "frozen/best.pt"), str(tmp_path / "constant_velocity/best.pt"), "--dataset", "tiny",
               "--split", str(split), "--trajectories", *trajectories, "--spectra", *spectra, "--spec", '{"table_step": 5}', "-o", str(output)]
    output.mkdir()
    (output / "stale_h2.nc").write_text("from an earlier run")  # the folder is replaced whole
    log = densim([*command, "--seed", "0"], tmp_path).stderr
    assert "frozen_h2.nc: 1 test rollouts of 13 steps; at step 5" in log and "relative MSE 1," in log and "2 evaluation files" in log
    assert sorted(p.name for p in output.iterdir()) == ["constant_velocity_h2.nc", "frozen_h2.nc"]
    assert not list(tmp_path.glob(".eval*"))  # the staging folder became the output
    for model in ("frozen", "constant_velocity"):
        with xr.open_dataset(output / f"{model}_h2.nc") as ds:
            assert ds.attrs["model"] == model and list(ds["trajectory"].values) == ["tiny/0003"] and list(ds["kept_step"].values) == [5, 13]
            assert str(tmp_path / f"{model}/best.pt") in ds.attrs["input_hashes"]
            assert str(tmp_path / ("frozen" if model != "frozen" else "constant_velocity") / "best.pt") not in ds.attrs["input_hashes"]
    wrong = subprocess.run([sys.executable, "-m", "densim.cli", *command, "--seed", "1"], capture_output=True, text=True)
    assert wrong.returncode != 0 and "best.pt: a checkpoint of seed 0, expected 1" in wrong.stderr
    write_json({"train": ["tiny/0000"], "validation": ["tiny/0002"], "test": []}, split)
    empty = subprocess.run([sys.executable, "-m", "densim.cli", *command], capture_output=True, text=True)
    assert empty.returncode != 0 and "split.json: the test part is empty" in empty.stderr
    assert sorted(p.name for p in output.iterdir()) == ["constant_velocity_h2.nc", "frozen_h2.nc"]  # a refusal changes nothing


def test_pushforward_scores_only_the_last_step_with_gradients_through_it_alone(graphs):
    sim = make_simulator(graphs, CONFIG)
    graph, h, steps = graphs[0], 2, 3
    pushed = sim.loss([graph], [(0, h)], steps, pushforward=True)
    sim.zero_grad()
    pushed.backward()
    gradient = [p.grad.clone() for p in sim.parameters()]
    with torch.no_grad():  # the state the first steps - 1 steps reach
        state = rollout(sim, graph, steps=steps - 1)[:, steps - 1 : steps + h]
    sim.zero_grad()
    last = h + steps - 1
    prediction = sim.step([graph], [state], [last])[1][0]
    single = torch.mean((prediction - sim.target(graph, state, last).to(prediction.dtype)) ** 2)
    single.backward()
    torch.testing.assert_close(pushed, single, rtol=1e-6, atol=0)
    for ours, reference in zip(gradient, (p.grad for p in sim.parameters())):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-12)


def test_model_setup_layers_section_model_defaults_overrides_and_variant():
    from densim.models import model_variant, variant_key
    from densim.experiments import check_models, model_setup

    training = {"horizon": 24, "loss_steps": 1, "overrides": {"igns_ti": {"loss_steps": 3, "pushforward": True}}}
    models = {"igns": {"hidden": 8, "warmup": 1}}
    assert model_setup("spatial", models, training).training.loss_steps == 1
    igns = model_setup("igns", models, training)  # IGNS brings the whole-window loss
    assert igns.training.loss_steps == "window" and igns.training.unrolled_steps(2) == 21 and igns.hyperparameters["warmup"] == 1
    assert model_setup("igns_ti", models, training).training.loss_steps == 3  # an override beats the model's default
    variant = model_setup("igns@warmup=5@loss_steps=20", models, training)  # a variant beats both
    assert (variant.model, variant.hyperparameters, variant.training.loss_steps) == ("igns", {"hidden": 8, "warmup": 5}, 20)
    assert model_variant(variant_key("igns", {"warmup": 5, "loss_steps": "window"})) == ("igns", {"warmup": 5, "loss_steps": "window"})
    for key, section, message in [
        ("igns", {"overrides": {"igns": {"horizon": 30}}}, r"training\.overrides\.igns\.horizon: not a training key of one model"),
        ("igns", {"overrides": {"igns": {"loss_steps": 0}}}, r"training\.overrides\.igns\.loss_steps"),
        ("igns@loss_steps=-2", {}, r"igns@loss_steps=-2, setting loss_steps"),
    ]:
        with pytest.raises(ConfigError, match=message):
            model_setup(key, models, {**training, **section})
    for key, histories, message in [
        ("igns@warmup", [2], r"experiments\.models: model variant 'igns@warmup'"),
        ("nonesuch@warmup=1", [2], r"experiments\.models: unknown model 'nonesuch'"),
        ("igns@loss_steps=22", [2], r"training\.horizon: 24 frames leave no training window for igns@loss_steps=22 at history 2"),
        ("igns@warmup=-1", [2], r"model variant igns@warmup=-1: warmup must be a non-negative integer"),
        ("spatial@colour=1", [2], r"colour"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_models([key], models, training, histories)
    check_models(["igns@loss_steps=21", "igns", "spatial"], models, training, [2])


@pytest.mark.parametrize("placement, firsts, limits", [("start", [0, 0, 0], [12, 12, 12]), ("before_rollout", [0, 0, 0], [12, 14, 12]),
                                                      ("everywhere", [0, 0, 0], [16, 16, 16]), ("after_rollout", [0, 13, 5], [16, 16, 16])])
def test_training_windows_and_statistics_lie_where_the_placement_says(graphs, placement, firsts, limits):
    # the second trajectory's rollouts start at frame 13: before_rollout may use frames 0..13, past the horizon of 12;
    # after_rollout uses frames 13.. of it (5.. of the third)
    train_set = [graphs[0], dataclasses.replace(graphs[1], rollout_start=13), dataclasses.replace(graphs[2], rollout_start=5)]
    config = dataclasses.replace(CONFIG, windows=placement)
    assert [config.training_range(t) for t in train_set] == list(zip(firsts, limits))
    windows = _windows(train_set, 2, config, loss_steps=3)
    for i, (first, limit) in enumerate(zip(firsts, limits)):
        lasts = [t for j, t in windows if j == i]
        assert lasts == list(range(first + 2, limit - 3))  # inputs from `first` on, the last target frame t + 3 before `limit`
    if placement != "start":  # statistics cover the frames the windows come from
        assert not torch.equal(compute_statistics(train_set, config).velocity_std, compute_statistics(train_set, CONFIG).velocity_std)


def test_early_stopping_stops_after_patience_validations_without_improvement_and_keeps_the_best(graphs, tmp_path):
    # a learning rate that float32 weights cannot feel: every validation scores the same, so none improves on the first
    config = dataclasses.replace(CONFIG, steps=40, validate_every=5, patience=2, learning_rate=1e-300, final_learning_rate=1e-300)
    history = fit(make_simulator(graphs, config), graphs, config, tmp_path)
    assert history["validation_step"] == [5, 10, 15] and history["step"][-1] == 15
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["stopped_at"] == 15 and saved["best_validation_step"] == 5
    assert read_checkpoint(tmp_path / "best.pt")["step"] == 5


def test_training_noise_is_a_random_walk_scaled_by_the_acceleration_std(graphs):
    config = dataclasses.replace(CONFIG, noise=2.0)
    sim = make_simulator(graphs, config)
    generator = torch.Generator().manual_seed(0)
    clean = sim.initial_state(graphs[0], 5)
    noise = torch.stack([sim.initial_state(graphs[0], 5, generator) - clean for _ in range(400)])  # (draws, N, h + 1, 2)
    measured = noise[:, :, -1].reshape(-1, 2).std(0)
    torch.testing.assert_close(measured, 2.0 * sim.acceleration_std, rtol=0.05, atol=0)
    steps = noise.diff(dim=2)  # independent increments of equal size along the window
    torch.testing.assert_close(steps.reshape(-1, 2).std(0), 2.0 * sim.acceleration_std / 3**0.5, rtol=0.05, atol=0)


def test_validation_reports_the_one_step_relative_mse_and_the_frozen_baseline_scores_one(graphs, tmp_path):
    from densim.training import one_step_relative_mse

    frozen = make_simulator(graphs, CONFIG, "frozen")
    assert one_step_relative_mse(frozen, graphs[3:], 2, 9) == pytest.approx(1.0)
    history = fit(make_simulator(graphs, CONFIG, "linear_floor"), graphs, CONFIG, tmp_path, "linear_floor")
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["best_validation_one_step_relative_mse"] == history["validation_one_step_relative_mse"][0] < 1.0
    assert saved["training_windows"] == {"placement": "start", "frames": [12, 12], "first_frames": [0, 0]}
