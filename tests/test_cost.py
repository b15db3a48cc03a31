"""``densim cost``: the jobs a configuration asks for (the workflow's own count, rule by rule), the configuration
loaded as Snakemake loads it, and prices from measured Snakemake benchmarks (see also the smoke run's test in
``test_workflow.py``)."""

import subprocess
import sys

import pytest

from densim.config import ConfigError, load_config
from densim.cost import Measured, estimate, jobs, read_benchmark
from tests.conftest import ROOT, copy_checkout

PRESETS = {"default": [], "paper": ["workflow/presets/paper.yaml"], "igns_ablation": ["workflow/presets/igns_ablation.yaml"],
           # one dataset of four (experiments.datasets): only its networks are built
           "fidelity_laptop": ["workflow/presets/fidelity.yaml", "workflow/presets/fidelity_laptop.yaml"],
           # regime variants: trajectories of their own, networks and spectra of their sources
           "regime": ["workflow/presets/regime.yaml"]}


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
def test_the_jobs_of_a_config_are_the_workflows_rule_by_rule(preset, tmp_path):
    config = load_config([ROOT / "config.yaml", *(ROOT / p for p in PRESETS[preset])])
    ours = {}
    for job in jobs(config):
        ours[job.rule] = ours.get(job.rule, 0) + 1
    theirs = snakemake_job_counts(PRESETS[preset], tmp_path)
    assert theirs.pop("all") == 1 and theirs.pop("total") == sum(ours.values()) + 1
    assert ours == theirs


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
    """One second per unit of learned training work and 10 s fixed per train job: doubling the optimiser steps
    doubles the learned models' variable cost and leaves the baselines' jobs at their fixed cost."""
    config = load_config([ROOT / "config.yaml"])
    measured = Measured(cpu={"train:spatial": 1.0}, wall={"train:spatial": 1.0}, fixed_cpu={"train": 10.0}, fixed_wall={"train": 10.0}, jobs={})
    config["experiments"]["models"] = ["spatial", "frozen"]
    config["experiments"]["history_ablation"]["datasets"] = []
    training = {row.stage: row for row in estimate(config, measured)}["training"]
    config["training"]["steps"] *= 2
    doubled = {row.stage: row for row in estimate(config, measured)}["training"]
    train_jobs = len([job for job in jobs(config) if job.rule == "train"])
    fixed = train_jobs * 10.0 / 3600
    assert doubled.cpu_hours - fixed == pytest.approx(2 * (training.cpu_hours - fixed))
    assert training.priced == train_jobs  # the baselines' jobs at their fixed cost, spatial's scaled


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """``densim cost ... | head``: the pipe's reader goes away before densim writes; densim stops quietly."""
    benchmark = tmp_path / "benchmarks/network/noi_pru/0000.tsv"
    benchmark.parent.mkdir(parents=True)
    benchmark.write_text("s\tcpu_time\n2.0\t1.5\n")
    process = subprocess.Popen([sys.executable, "-m", "densim", "cost", "config.yaml", "--measured", str(tmp_path / "benchmarks")],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
