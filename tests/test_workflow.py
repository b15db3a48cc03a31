"""The Snakemake workflow: config validation before any job, and the whole DAG end to end on the smoke preset."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from tests.conftest import ROOT, copy_checkout

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture
def workdir(tmp_path):
    return copy_checkout(tmp_path)


def snakemake(workdir, *args, timeout=900):
    return subprocess.run([*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)


#: Bad config layers and the key the refusal names: schema errors (types, bounds, enums, unknown keys) and the
#: checks that relate several keys (models, datasets, training windows).
INVALID_CONFIGS = [
    ("packing:\n  nodes: -5\n", "packing.nodes"),
    ("datasets:\n  noi_pru:\n    generator: magic\n", "datasets.noi_pru.generator"),
    ("datasets:\n  noi_pru:\n    generator: noi_pru\n    nu_range: [-1.5, 0.2]\n", r"datasets.noi_pru.nu_range[0]"),
    ("datasets:\n  noi_pru:\n    generator: noi_pru\n    nu_range: [0.5, 0.2]\n", "datasets.noi_pru.nu_range"),
    ("datasets:\n  noi_pru:\n    generator: noi_pru\n    networks: 0\n", "datasets.noi_pru.networks"),
    ("experiments:\n  history_ablation:\n    models: [magic]\n", "experiments.history_ablation.models"),
    ("experiments:\n  history_ablation:\n    datasets: [nowhere]\n", "experiments.history_ablation.datasets"),
    ("evaluation:\n  table_step: 0\n", "evaluation.table_step"),
    ("evaluation:\n  blowup: 2\n", "evaluation"),
    ("experiments:\n  igns_ablation:\n    models: [spatial]\n    datasets: [node_opt]\n", "experiments.igns_ablation.models"),
    ("experiments:\n  igns_ablation:\n    datasets: [nowhere]\n", "experiments.igns_ablation.datasets"),
    ("training:\n  overrides:\n    igns:\n      loss_steps: 0\n", "training.overrides.igns.loss_steps"),
    ("training:\n  overrides:\n    igns:\n      horizon: 30\n", "training.overrides.igns.horizon"),
    ("training:\n  horizon: 3\n", "training.horizon"),
]


@pytest.mark.parametrize("override, key", [INVALID_CONFIGS[0], INVALID_CONFIGS[5], INVALID_CONFIGS[-2]])
def test_invalid_config_fails_before_any_job_naming_the_key(workdir, override, key):
    """Through Snakemake, for a schema error and two cross-key ones (each Snakemake start costs seconds: the rest of
    the list goes through the same function in-process, below)."""
    (workdir / "bad.yaml").write_text(override)
    result = snakemake(workdir, "--cores", "1", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert f"invalid config key {key}" in result.stderr
    assert not (workdir / "results").exists()


@pytest.mark.parametrize("override, key", INVALID_CONFIGS)
def test_invalid_config_is_refused_by_the_workflows_resolution_naming_the_key(tmp_path, override, key):
    """``densim.experiments.resolve_config``, which ``workflow/rules/common.smk`` calls, on config.yaml + the layer."""
    from densim.config import ConfigError, load_config
    from densim.experiments import resolve_config

    (tmp_path / "bad.yaml").write_text(override)
    with pytest.raises(ConfigError) as refused:
        resolve_config(load_config([ROOT / "config.yaml", tmp_path / "bad.yaml"]))
    assert str(refused.value).startswith(key), str(refused.value)


def test_dry_run_lists_exactly_the_default_configs_jobs_rule_by_rule(workdir):
    """The README's main command, dry: every rule with the job count that the default config asks for."""
    from densim.models import MODELS

    result = snakemake(workdir, "-n", "--forceall", "--cores", "all")
    assert result.returncode == 0, result.stderr
    stats = result.stdout[result.stdout.index("Job stats:"):]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE)}
    networks, seeds, generated = 40, 2, 3  # node_opt, bond_pru_opt, noi_pru; impact kicks node_opt's networks
    runs = 5 * len(MODELS) * seeds + 2 * 2 * generated * seeds  # 4 simulated + 1 union dataset; spatial, NLSF (norm) at h 1, 5
    # one evaluation job per dataset and seed of each grid: the main one (5 datasets) and the history ablation (3)
    assert counts == {"networks": generated * networks, "networks_manifest": generated, "spectra": generated * networks,
                      "trajectories": 4 * networks, "trajectories_summary": 1, "splits": 4 * seeds, "splits_union": seeds,
                      "training_statistics": 5 * seeds, "training": runs, "evaluation": (5 + generated) * seeds, "rollout_accuracy": 1, "history": 1,
                      "modes_and_bias": 1, "rollouts": 1, "tables": 1, "all": 1, "total": sum(counts.values()) - counts["total"]}


def test_the_readmes_rule_graph_is_current(workdir):
    """The README's rule graph is what Snakemake draws of the default config now (the command it names)."""
    result = snakemake(workdir, "--rulegraph", "mermaid-js", "--forceall", "--nolock")
    assert result.returncode == 0, result.stderr
    readme = (ROOT / "README.md").read_text()
    shown = readme[readme.index("```mermaid\n") + len("```mermaid\n"):]
    assert _rule_edges(shown[: shown.index("```")]) == _rule_edges(result.stdout)


def _rule_edges(mermaid: str) -> set[tuple[str, str]]:
    """The (upstream rule, downstream rule) pairs of a mermaid-js rule graph (its node ids and line order vary)."""
    names = dict(re.findall(r"^\s*(id\d+)\[(\w+)\]", mermaid, re.MULTILINE))
    edges = {(names[a], names[b]) for a, b in re.findall(r"^\s*(id\d+) --> (id\d+)", mermaid, re.MULTILINE)}
    assert len(names) > 10 and len(edges) > 20, mermaid
    return edges


def _rule_sections(text):
    """Rule name -> section name -> the quoted strings in it, read from a rules file."""
    rules, rule, section = {}, None, None
    for line in text.splitlines():
        if match := re.match(r"^(?:rule|use rule \w+ as) (\w+)(?: with)?:", line):
            rule, section = rules.setdefault(match.group(1), {}), None
        elif rule is not None and (match := re.match(r"^    (\w+):", line)):
            section = rule.setdefault(match.group(1), [])
        elif rule is not None and section is not None:
            section += re.findall(r'"([^"]*)"', line)
    return rules


def test_each_stage_has_one_name():
    """The README's stage table: a stage's rules file, CLI subcommand, module, results/ and logs/ folders share a name;
    its rules carry the name too (the figures stage's notebook rules are named after their notebooks)."""
    import importlib.util

    from densim.cli import build_parser

    root = Path(__file__).resolve().parent.parent
    subcommands = next(action for action in build_parser()._actions if action.dest == "stage").choices
    stages = sorted(path.stem for path in (root / "workflow/rules").glob("*.smk") if path.stem != "common")
    assert stages == ["evaluation", "figures", "networks", "spectra", "splits", "training", "trajectories"]
    for stage in stages:
        assert stage in subcommands and importlib.util.find_spec(f"densim.{stage}") is not None, stage
        rules = _rule_sections((root / f"workflow/rules/{stage}.smk").read_text())
        results = ("results/figures/", "results/tables/", "results/notebooks/") if stage == "figures" else (f"results/{stage}/",)
        for name, sections in rules.items():
            assert stage == "figures" or name == stage or name.startswith(f"{stage}_"), name
            outputs = [path for path in sections["output"] if not path.startswith("../report/") and "/" in path]  # not captions
            assert outputs and all(path.startswith(results) for path in outputs), (name, outputs)
            assert sections["log"] and all(path.startswith(f"logs/{stage}/") for path in sections["log"]), (name, sections["log"])
            assert [path.split("/")[2] for path in sections["benchmark"]] == [name], (name, sections["benchmark"])
        assert stage in rules or stage == "figures"


def test_smoke_preset_builds_every_output(smoke):
    import json

    workdir = smoke
    for dataset in ("node_opt", "bond_pru_opt", "noi_pru"):
        table = pd.read_csv(workdir / f"results/networks/{dataset}/manifest.csv")
        assert len(table) == 3
        assert (workdir / f"results/networks/{dataset}/manifest.csv.provenance.json").exists()
        assert len(list((workdir / f"results/trajectories/{dataset}").glob("*.nc"))) == 3
    # impact is a variant of node_opt: its trajectories kick node_opt's networks, which are never regenerated
    assert not (workdir / "results/networks/impact").exists() and not (workdir / "results/spectra/impact").exists()
    impact = xr.open_dataset(workdir / "results/trajectories/impact/0000.nc")
    assert (impact.attrs["dataset"], impact.attrs["network_dataset"], impact.attrs["protocol"]) == ("impact", "node_opt", "impact")
    summary = pd.read_csv(workdir / "results/trajectories/summary.csv")
    assert sorted(summary["dataset"]) == ["bond_pru_opt", "comb", "impact", "node_opt", "noi_pru"]  # comb pools its members
    comb = json.loads((workdir / "results/splits/comb/seed0.json").read_text())
    members = [json.loads((workdir / f"results/splits/{d}/seed0.json").read_text()) for d in ("node_opt", "bond_pru_opt", "noi_pru")]
    for part in ("train", "validation", "test"):
        assert comb[part] == sorted(ref for member in members for ref in member[part])
    assert len(comb["train"] + comb["validation"] + comb["test"]) == 9
    for dataset in ("node_opt", "comb"):
        assert (workdir / f"results/training/{dataset}/statistics/seed0.nc").exists()
        for model in ("spatial", "nlsf"):
            folder = workdir / f"results/training/{dataset}/{model}/h2/seed0"
            assert (folder / "best.pt").exists() and json.loads((folder / "history.json").read_text())["step"][-1] == 4
        errors = {model: json.loads((workdir / f"results/training/{dataset}/{model}/h2/seed0/history.json").read_text())["best_validation_rollout_error"]
                  for model in ("frozen", "linear_floor")}
        assert 0 < errors["linear_floor"] < errors["frozen"]
    # asking again does nothing: every output is up to date
    again = snakemake(workdir, "-n", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


SMOKE_MODELS = ["spatial", "nlsf", "frozen", "linear_floor"]
SMOKE_DATASETS = ["node_opt", "bond_pru_opt", "noi_pru", "comb", "impact"]


def test_smoke_preset_evaluates_every_model_and_renders_tables_figures_and_report(smoke):
    import json

    import xarray as xr

    for dataset in SMOKE_DATASETS:
        for model in SMOKE_MODELS:
            with xr.open_dataset(smoke / f"results/evaluation/main/{dataset}/seed0/{model}_h2.nc") as ds:
                assert ds.attrs["densim_kind"] == "evaluation" and ds.attrs["model"] == model
                assert ds.sizes["step"] == 11 - 3 and ds.attrs["table_step"] == 8  # 11 frames: 8 steps after h + 1 = 3
                if model == "frozen":
                    assert (ds["relative_mse"] == 1.0).all()
                split = json.loads((smoke / f"results/splits/{dataset}/seed0.json").read_text())
                assert list(ds["trajectory"].values) == split["test"]
    assert (smoke / "results/evaluation/history/node_opt/seed0/spatial_h1.nc").exists()  # the history ablation
    for variant in ("igns", "igns@warmup=1", "igns@loss_steps=1"):  # the IGNS ablation, one factor at a time
        with xr.open_dataset(smoke / f"results/evaluation/igns_ablation/node_opt/seed0/{variant}_h2.nc") as ds:
            assert ds.attrs["model"] == variant
    assert "igns · warmup = 1" in (smoke / "results/tables/igns_ablation.md").read_text().replace("IGNS", "igns")
    for name in ("rollout_accuracy", "history", "modes_and_bias", "igns_ablation", "rollouts", "tables"):
        assert (smoke / f"results/notebooks/{name}.ipynb").exists()
    for figure in ("rollout_accuracy", "history", "modes_and_bias", "igns_ablation", "rollouts"):
        for suffix in ("pdf", "png"):
            path = smoke / f"results/figures/{figure}.{suffix}"
            assert path.stat().st_size > 1000 and (smoke / f"results/figures/{figure}.{suffix}.provenance.json").exists()
    animation = smoke / "results/figures/rollouts.gif"
    assert animation.read_bytes()[:6] == b"GIF89a" and animation.with_name("rollouts.gif.provenance.json").exists()
    table2 = pd.read_csv(smoke / "results/tables/table2_poisson_r2.csv")
    assert table2.shape[0] >= len(SMOKE_MODELS)
    for table in ("table1_l2", "table2_poisson_r2", "difficulty"):
        for suffix in ("csv", "md", "tex"):
            assert (smoke / f"results/tables/{table}.{suffix}").stat().st_size > 0
    report = snakemake(smoke, "--report", "results/report.html", "--configfile", "workflow/presets/smoke.yaml")
    assert report.returncode == 0, report.stderr[-3000:]
    assert (smoke / "results/report.html").stat().st_size > 10000
    archive = snakemake(smoke, "--report", "results/report.zip", "--configfile", "workflow/presets/smoke.yaml")
    assert archive.returncode == 0, archive.stderr[-3000:]
    import zipfile

    with zipfile.ZipFile(smoke / "results/report.zip") as bundle:  # the workflow catalog's report: every figure and table
        names = bundle.namelist()
    for figure in ("rollout_accuracy", "history", "modes_and_bias", "igns_ablation", "rollouts"):
        assert any(name.endswith(f"/{figure}.png") for name in names), figure
    assert any(name.endswith("/rollouts.gif") for name in names)
    assert any(name.endswith("/table1_l2.csv") for name in names) and any(name.endswith("report.html") for name in names)


def test_editing_one_notebook_reruns_only_its_figure(smoke, tmp_path):
    """Snakemake compares input checksums: a notebook whose text changed reruns, and only its rule."""
    import json

    workdir = tmp_path / "run"
    shutil.copytree(smoke, workdir, symlinks=True)
    notebook = workdir / "notebooks/rollout_accuracy.ipynb"
    content = json.loads(notebook.read_text())
    content["cells"][0]["source"] += "\n\nEdited."
    notebook.write_text(json.dumps(content, indent=1))
    result = snakemake(workdir, "results/figures/rollout_accuracy.pdf", "-n", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = (result.stdout + result.stderr).split("Job stats:")[1].split("\n\n")[0]
    assert dict(re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.MULTILINE)) == {"rollout_accuracy": "1", "total": "1"}, stats


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_finished_trajectories(workdir):
    """Stop Snakemake in the middle of the trajectories stage, then run it again (the data stages' target alone: the
    stages after it are the hard-kill tests' part)."""
    import signal
    import time

    import xarray as xr

    from densim.config import load_config
    from densim.experiments import resolve_config, trajectory_section

    (workdir / "slow.yaml").write_text("trajectories:\n  dynamics: quasi_static\n  frames: 31\n  steps_per_frame: 400\n")
    args = [*SNAKEMAKE, "results/trajectories/summary.csv", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml", "slow.yaml"]
    trajectories = workdir / "results/trajectories"
    process = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and len(list(trajectories.glob("*/*.nc"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    finished = {path: path.stat().st_mtime_ns for path in trajectories.glob("*/*.nc")}
    assert 2 <= len(finished) < 12, "the stop did not land inside the trajectories stage"
    assert not list(trajectories.glob("*/.*.tmp")), "a half-written file was left behind"

    result = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was redone"
    all_files = sorted(trajectories.glob("*/*.nc"))
    assert len(all_files) == 12  # 3 networks of each of the 4 simulated datasets
    config = resolve_config(load_config([workdir / "config.yaml", workdir / "workflow/presets/smoke.yaml", workdir / "slow.yaml"]))
    frames = {path.parent.name: trajectory_section(config, path.parent.name)["frames"] for path in all_files}
    assert 31 in frames.values()  # the layered file reached the datasets that do not override their frames
    for path in all_files:
        with xr.open_dataset(path) as ds:
            assert ds.attrs["densim_kind"] == "trajectory"
            assert ds.sizes["time"] == frames[path.parent.name]


def test_a_changed_hyperparameter_retrains_that_model_from_step_0(smoke, tmp_path):
    """Snakemake reruns the jobs whose model section changed; their last.pt (not an output) is not resumed."""
    import json

    from densim.io import read_checkpoint
    from densim.provenance import config_hash

    workdir = tmp_path / "run"
    shutil.copytree(smoke, workdir, symlinks=True)
    (workdir / "wider.yaml").write_text("models:\n  spatial: {hidden: 24, num_layers: 2}\n")
    configs = ("--configfile", "workflow/presets/smoke.yaml", "wider.yaml")
    result = snakemake(workdir, "-n", "--cores", "2", *configs)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = (result.stdout + result.stderr).split("Job stats:")[1].split("\n\n")[0]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.MULTILINE))
    # spatial on 5 datasets and at history 1 on node_opt (the ablation), the evaluations of the grids that hold them
    # (main on 5 datasets, history on node_opt) and what draws on them
    assert jobs == {"all": "1", "training": "6", "evaluation": "6", "rollout_accuracy": "1", "history": "1", "modes_and_bias": "1", "rollouts": "1",
                    "tables": "1", "total": "18"}, stats
    datasets = ("node_opt", "bond_pru_opt", "noi_pru", "comb")
    # the retraining itself (the evaluations and notebooks after it are those of any run)
    result = snakemake(workdir, *(f"results/training/{dataset}/spatial/h2/seed0/best.pt" for dataset in datasets), "--cores", "2", *configs)
    assert result.returncode == 0, result.stderr[-3000:]
    for dataset in datasets:
        folder = workdir / f"results/training/{dataset}/spatial/h2/seed0"
        checkpoint = read_checkpoint(folder / "best.pt")
        assert checkpoint["run"]["hyperparameters"]["hidden"] == 24
        assert checkpoint["hash"] == config_hash(checkpoint["run"]) == read_checkpoint(folder / "last.pt")["hash"]
        assert json.loads((folder / "history.json").read_text())["step"] == [1, 2, 3, 4]
        log = (workdir / f"logs/training/{dataset}/spatial/h2/seed0.log").read_text()
        assert "from another run" in log and "hyperparameters" in log and "training from step 0" in log


def test_a_training_setting_that_statistics_do_not_use_reruns_training_only(smoke, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(smoke, workdir, symlinks=True)
    (workdir / "longer.yaml").write_text("training:\n  steps: 6\n")
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml", "longer.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = (result.stdout + result.stderr).split("Job stats:")[1].split("\n\n")[0]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.MULTILINE))
    # 4 models on 5 datasets, the history ablation's spatial h1 and the IGNS ablation's 3 variants, the evaluations of
    # their grids (main on 5 datasets, history and IGNS ablation on node_opt) and the notebooks; statistics stay
    assert jobs == {"all": "1", "training": "24", "evaluation": "7", "rollout_accuracy": "1", "history": "1", "igns_ablation": "1",
                    "modes_and_bias": "1", "rollouts": "1", "tables": "1", "total": "38"}, stats


def test_provenance_verify_passes_on_an_untouched_tree_and_names_an_edited_trajectory(smoke, tmp_path, monkeypatch, capsys):
    import xarray as xr

    from densim.cli import main

    workdir = tmp_path / "audited"
    shutil.copytree(smoke / "results", workdir / "results", symlinks=True)
    monkeypatch.chdir(workdir)
    table = "results/tables/table2_poisson_r2.md"
    main(["provenance", "--verify", table])
    assert "upstream files are as they were used" in capsys.readouterr().out
    main(["provenance", table])  # the chain reaches the networks through every stage
    chain = capsys.readouterr().out
    for upstream in ("results/evaluation/main/node_opt/seed0/spatial_h2.nc", "results/training/node_opt/spatial/h2/seed0/best.pt",
                     "results/training/node_opt/statistics/seed0.nc", "results/splits/node_opt/seed0.json", "results/trajectories/node_opt/0000.nc",
                     "results/spectra/node_opt/0000.nc", "results/networks/node_opt/manifest.csv", "results/networks/node_opt/0000.nc"):
        assert upstream in chain, upstream
    edited = Path("results/trajectories/node_opt/0001.nc")
    with xr.open_dataset(edited) as ds:
        changed = ds.load().assign(positions=ds["positions"] + 1e-9)
    edited.unlink()
    changed.to_netcdf(edited)
    Path("results/spectra/noi_pru/0002.nc").unlink()
    with pytest.raises(SystemExit, match="changed since they were used"):
        main(["provenance", "--verify", table])
    report = capsys.readouterr().out
    assert f"CHANGED  {edited}: read by" in report and "MISSING  results/spectra/noi_pru/0002.nc" in report


def test_every_job_writes_a_benchmark_and_the_cost_of_the_run_it_measured_is_its_own(smoke):
    """``densim cost`` priced from the smoke run's benchmarks: every job of the smoke preset is priced, and the
    estimate for the very config it measured adds up to the CPU and wall time the benchmarks recorded, even where a
    learned model's jobs cost less than the baselines' (tiny models on a busy machine)."""
    from densim.config import load_config
    from densim.cost import dag_jobs, estimate, measure, read_benchmark
    from densim.experiments import resolve_config

    benchmarks = sorted((smoke / "logs/benchmarks").rglob("*.tsv"))
    files = [smoke / "config.yaml", smoke / "workflow/presets/smoke.yaml"]
    config, jobs = resolve_config(load_config(files)), dag_jobs(files, smoke)
    assert sorted(smoke / job.benchmark for job in jobs) == benchmarks
    rows, unpriced = estimate(config, measure(smoke / "logs/benchmarks", config, jobs), jobs)
    assert sum(row.priced for row in rows) == sum(row.jobs for row in rows) == len(jobs) and not unpriced
    wall, cpu = (sum(read_benchmark(path)[i] for path in benchmarks) / 3600 for i in (0, 1))
    assert sum(row.cpu_hours for row in rows) == pytest.approx(cpu, rel=1e-9)
    assert sum(row.wall_hours for row in rows) == pytest.approx(wall, rel=1e-9)
    # another config, priced from these measurements: the default run (the paper preset's dry run alone takes a minute)
    result = subprocess.run(["densim", "cost", "config.yaml", "--measured-config", "config.yaml", "workflow/presets/smoke.yaml"],
                            cwd=smoke, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    # every job of its dry run priced (that the dry run's jobs are Snakemake's own is tests/test_cost.py's part)
    default = int(re.search(r"^config\.yaml: (\d+) jobs$", result.stdout, re.MULTILINE).group(1))
    assert default > len(jobs) and f"| **total** | {default} | {default} |" in result.stdout


def test_the_rollout_pictures_show_the_rollouts_that_the_evaluation_scored(smoke, monkeypatch):
    """The rollouts notebook rolls each picked model out again from its checkpoint: its errors are the evaluation
    file's, and the model is the dataset's best learned one at the table step."""
    from densim.io import read_evaluation
    from densim.plots import rollout_examples

    monkeypatch.chdir(smoke)
    evaluations = [f"results/evaluation/main/{d}/seed0/{m}_h2.nc" for d in SMOKE_DATASETS for m in SMOKE_MODELS]
    examples = rollout_examples(evaluations, {"node_opt": "node_opt", "bond_pru_opt": "bond_pru_opt", "noi_pru": "noi_pru", "impact": "node_opt"})
    assert sorted((e.dataset, e.model == "linear_floor") for e in examples) == sorted((d, floor) for d in SMOKE_DATASETS for floor in (False, True))
    for example in examples:
        ds = read_evaluation(f"results/evaluation/main/{example.dataset}/seed0/{example.model}_h2.nc")
        at = ds.sel(step=ds.attrs["table_step"])
        assert example.network == str(ds["trajectory"].values[0]) and len(example.truth) == ds.attrs["table_step"] + 1
        assert float(example.error(-1).mean()) == pytest.approx(float(at["l2"].values[0]), rel=1e-9)
        if example.model != "linear_floor":
            scores = {m: float(read_evaluation(f"results/evaluation/main/{example.dataset}/seed0/{m}_h2.nc").sel(step=at["step"])["l2"].mean())
                      for m in ("spatial", "nlsf")}
            assert example.model == min(scores, key=scores.get)
