"""``densim cost``: the jobs a configuration asks for (read from Snakemake's own dry run), the configuration loaded
as Snakemake loads it, and prices from measured Snakemake benchmarks (see also the smoke run's test in
``test_workflow.py``)."""

import subprocess
import sys
from collections import Counter

import pytest

from densim.config import ConfigError, load_config
from densim.experiments import resolve_config
from densim.cost import Job, Measured, dag_jobs, estimate, parse_dry_run, read_benchmark
from tests.conftest import ROOT, copy_checkout

#: The paper preset is the default's DAG at larger counts (a dry run of it alone takes a minute): the default stands for it.
PRESETS = {"default": [], "igns_ablation": ["workflow/presets/igns_ablation.yaml"],
           # one dataset of four (experiments.datasets): only its networks are built
           "fidelity_laptop": ["workflow/presets/fidelity.yaml", "workflow/presets/fidelity_laptop.yaml"],
           # regime variants: trajectories of their own, networks and spectra of their sources
           "regime": ["workflow/presets/regime.yaml"],
           # datasets of two network sizes (datasets.*.packing)
           "large": ["workflow/presets/large.yaml"]}


def _folder(path):
    path.mkdir(parents=True)
    return path


def snakemake_job_counts(presets: list[str], workdir) -> dict[str, int]:
    """Snakemake's own job count per rule in a dry run (its ``Job stats`` table) of a run from scratch: in a copy of the
    workflow, so that the user's own ``results/`` (a finished or interrupted run) never counts."""
    configfile = ["--configfile", *presets] if presets else []
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", *configfile], cwd=copy_checkout(workdir),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line)
    counts = {}
    for line in lines[start + 2:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_jobs_are_snakemakes_own_with_their_wildcards_and_benchmarks(preset, tmp_path):
    workdir = copy_checkout(_folder(tmp_path / "workflow"))
    jobs = dag_jobs([workdir / "config.yaml", *(workdir / p for p in PRESETS[preset])], workdir)
    theirs = snakemake_job_counts(PRESETS[preset], _folder(tmp_path / "stats"))
    assert theirs.pop("all") == 1 and theirs.pop("total") == len(jobs) + 1
    assert Counter(job.rule for job in jobs) == theirs
    for job in jobs:
        values = job.values
        if job.rule == "training":
            path = f"{values['dataset']}/{values['model']}/h{values['history']}/seed{values['seed']}.tsv"
            assert job.benchmark == f"logs/benchmarks/training/{path}", job
        if job.rule == "evaluation":
            assert job.benchmark == f"logs/benchmarks/evaluation/{values['grid']}/{values['dataset']}/seed{values['seed']}.tsv", job
        if job.rule == "networks":
            assert job.benchmark == f"logs/benchmarks/networks/{values['dataset']}/{values['network']}.tsv", job
    if preset == "igns_ablation":  # variants MODEL@KEY=VALUE keep their '=' inside the wildcard's value
        assert {"igns@warmup=5", "igns_ti@loss_steps=1"} <= {job.values.get("model") for job in jobs}
        assert {job.values["grid"] for job in jobs if job.rule == "evaluation"} == {"main", "history", "igns_ablation"}


def test_a_dry_run_block_is_read_whole():
    text = """Building DAG of jobs...
[Thu Dec  3 02:59:16 2026]
rule training:
    input: results/splits/impact/seed0.json
    output: results/training/impact/igns@warmup=5/h2/seed0/best.pt
    jobid: 7
    benchmark: logs/benchmarks/training/impact/igns@warmup=5/h2/seed0.tsv
    reason: Forced execution
    wildcards: dataset=impact, model=igns@warmup=5, history=2, seed=0
    resources: tmpdir=/tmp
[Thu Dec  3 02:59:16 2026]
localrule all:
    input: results/tables/table1_l2.csv
    jobid: 0
"""
    assert parse_dry_run(text) == [Job("training", (("dataset", "impact"), ("model", "igns@warmup=5"), ("history", "2"), ("seed", "0")),
                                       "logs/benchmarks/training/impact/igns@warmup=5/h2/seed0.tsv")]


def test_a_config_is_loaded_as_the_workflow_validates_it():
    import copy

    import yaml
    from snakemake.utils import update_config, validate

    from densim.config import SCHEMA_PATH

    files = [ROOT / "config.yaml", ROOT / "workflow/presets/paper.yaml"]
    merged = yaml.safe_load(files[0].read_text())
    update_config(merged, yaml.safe_load(files[1].read_text()))  # what --configfile does: a recursive update
    expected = copy.deepcopy(merged)
    validate(expected, schema=str(SCHEMA_PATH))
    assert load_config(files) == expected


def test_a_bad_config_file_or_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml: not a readable YAML config"):
        load_config([tmp_path / "nowhere.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  steps: -3\n")
    with pytest.raises(ConfigError, match=r"training.steps: -3 is less than the minimum of 1"):
        load_config([ROOT / "config.yaml", bad])


def test_a_broken_benchmark_file_is_named(tmp_path):
    path = tmp_path / "seed0.tsv"
    path.write_text("not a benchmark\n")
    with pytest.raises(ValueError, match="seed0.tsv: not a Snakemake benchmark file"):
        read_benchmark(path)


def test_prices_scale_with_the_work_and_keep_the_fixed_cost():
    """One second per unit of learned training work and 10 s fixed per training job: doubling the optimiser steps
    doubles the learned models' variable cost and leaves the baselines' jobs at their fixed cost; a rule nothing
    measured is named, not priced."""
    config = resolve_config(load_config([ROOT / "config.yaml"]))
    measured = Measured(cpu={"training:spatial": 1.0}, wall={"training:spatial": 1.0}, fixed_cpu={"training": 10.0}, fixed_wall={"training": 10.0}, jobs={})
    jobs = [Job("training", (("dataset", dataset), ("model", model), ("history", "2"), ("seed", "0")))
            for dataset in ("node_opt", "impact") for model in ("spatial", "frozen")]
    jobs += [Job("evaluation", (("grid", "main"), ("dataset", dataset), ("seed", "0"))) for dataset in ("node_opt", "impact")]
    rows, unpriced = estimate(config, measured, jobs)
    training = {row.stage: row for row in rows}["training"]
    config["training"]["steps"] *= 2
    doubled = {row.stage: row for row in estimate(config, measured, jobs)[0]}["training"]
    fixed = 4 * 10.0 / 3600
    assert doubled.cpu_hours - fixed == pytest.approx(2 * (training.cpu_hours - fixed)) and training.cpu_hours > fixed
    assert training.priced == training.jobs == 4  # the baselines' jobs at their fixed cost, spatial's scaled
    assert unpriced == Counter({"evaluation": 2})


@pytest.mark.slow  # two Snakemake dry runs of the smoke preset
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """``densim cost ... | head``: the pipe's reader goes away before densim writes; densim stops quietly."""
    benchmark = tmp_path / "benchmarks/networks/noi_pru/0000.tsv"
    benchmark.parent.mkdir(parents=True)
    benchmark.write_text("s\tcpu_time\n2.0\t1.5\n")
    process = subprocess.Popen([sys.executable, "-m", "densim", "cost", "config.yaml", "workflow/presets/smoke.yaml", "--measured", str(tmp_path / "benchmarks")],
                               cwd=copy_checkout(_folder(tmp_path / "workflow")), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
