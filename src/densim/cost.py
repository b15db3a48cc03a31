"""What a configuration will cost before it runs: its jobs per stage, and CPU-, wall- and GPU-hours scaled from
the per-job costs a finished run measured.

Every rule of the workflow writes a Snakemake benchmark (``logs/benchmarks/{rule}/{wildcards}.tsv``: wall seconds
``s`` and ``cpu_time``) for each job it runs. :func:`dag_jobs` asks Snakemake itself for the jobs of a run of a
configuration (a dry run of the whole DAG, with each job's rule, wildcards and benchmark file), so the job list is the
workflow's own. :func:`measure` reads the benchmark of every job of the measured run's DAG, and :func:`estimate`
prices each job of another at the measured cost per unit of work of its rule (and its model, generator or protocol
where those differ), times its own units, and says which jobs it could not price.
The units are each stage's dominant term, assumed rather than fitted:

========================  ==============================================================================
networks                  nodes² (per generator: each optimises or prunes against linear-response moduli)
trajectories              nodes × frames × MD steps per frame (per protocol)
spectra                   nodes
training_statistics       networks × training horizon × nodes
training                  optimiser steps × batch × loss steps × nodes × hidden² × layers (per model)
evaluation                its runs' sum of test networks × rollout steps × nodes × hidden² × layers
figures and tables        evaluation files read
others                    one unit per job
========================  ==============================================================================

Training jobs also have a fixed cost (starting Python and PyTorch, reading the split, validation rollouts) that does
not grow with the optimiser steps: it is measured as the mean cost of the baselines' training jobs (``frozen``,
``linear_floor``: fitted in closed form, no optimiser steps), or the mean of the model's own jobs where that is less,
and only the rest of a learned model's job is scaled (so the measured run is priced at exactly its recorded cost).
Validation inside training is thereby counted as fixed. An evaluation job evaluates every run of its grid on one dataset
and seed, learned models among them, so it has no fixed cost of its own to measure: it is scaled whole by its runs'
units, as are the other rules.
GPU-hours are the training jobs' wall time times ``cluster.training_gpus``, scaled from wall times measured on the
device the measured run trained on (``--measured-device``): CPU measurements give an upper bound, not a GPU time.
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from densim.experiments import dataset_nodes, dataset_protocol, evaluation_grids, network_count, trajectory_section
from densim.splits import SplitFractions, split_networks
from densim.models import BASELINES, model_variant
from densim.md import REGIMES
from densim.protocols import PROTOCOLS, md_settings

#: The workflow's stages, in the order it runs them (workflow/rules/{stage}.smk).
STAGES = ("networks", "trajectories", "spectra", "splits", "training", "evaluation", "figures")


def stage_of(rule: str) -> str:
    """A rule's stage: rules are named after their stage (``training``, ``training_statistics``), the figures stage's
    notebook rules after their notebooks."""
    return next((stage for stage in STAGES if rule == stage or rule.startswith(f"{stage}_")), "figures")


class DryRunError(RuntimeError):
    """Snakemake's dry run of a configuration failed (its message says why)."""


@dataclass(frozen=True)
class Job:
    """One job of the workflow: its rule, its wildcards and its benchmark file (``logs/benchmarks/...``)."""

    rule: str
    wildcards: tuple[tuple[str, str], ...] = ()
    benchmark: str | None = None

    @property
    def values(self) -> dict:
        return dict(self.wildcards)


_RULE = re.compile(r"^\s*(?:local)?rule (\w+):$")
_FIELD = re.compile(r"^\s*(wildcards|benchmark): (.*)$")


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of a Snakemake dry run's output (each ``rule NAME:`` block's wildcards and benchmark), rule ``all``
    aside."""
    blocks: list[dict] = []
    for line in text.splitlines():
        if match := _RULE.match(line):
            blocks.append({"rule": match.group(1)})
        elif blocks and (match := _FIELD.match(line)):
            blocks[-1][match.group(1)] = match.group(2).strip()
    return [Job(block["rule"], tuple(tuple(pair.split("=", 1)) for pair in block.get("wildcards", "").split(", ") if pair),
                block.get("benchmark")) for block in blocks if block["rule"] != "all"]


def dag_jobs(configs: Sequence[str | Path], workflow: str | Path = ".") -> list[Job]:
    """Every job of a run of ``configs`` (layered in order) from scratch, as Snakemake's own dry run of the workflow in
    ``workflow`` lists them: ``--forceall``, so whatever ``results/`` holds does not count, and ``--nolock``, so it
    runs beside a workflow that is running.

    Raises
    ------
    DryRunError
        With Snakemake's message, when the dry run fails (a bad config key, a missing file).
    """
    files = [str(Path(path).resolve()) for path in configs]
    command = [sys.executable, "-m", "snakemake", "--dry-run", "--forceall", "--nolock", "--cores", "1", "--configfile", *files]
    result = subprocess.run(command, cwd=workflow, capture_output=True, text=True)
    if result.returncode != 0:
        message = "\n".join(line for line in result.stderr.splitlines()[-20:] if line.strip())
        raise DryRunError(f"Snakemake's dry run of {' + '.join(map(str, configs))} failed:\n{message}")
    return parse_dry_run(result.stdout)


def _networks(config: dict, dataset: str) -> int:
    section = config["datasets"][dataset]
    return sum(_networks(config, member) for member in section["union"]) if "union" in section else network_count(config, dataset)


def _test_networks(config: dict, dataset: str) -> int:
    """Test trajectories of a dataset (a union's are its members')."""
    section = config["datasets"][dataset]
    if "union" in section:
        return sum(_test_networks(config, member) for member in section["union"])
    references = [str(i) for i in range(network_count(config, dataset))]
    return len(split_networks(references, SplitFractions(**config["splits"]), seed=0)["test"])


def _model_work(setup) -> float:
    """hidden² x layers of a resolved model (:func:`densim.experiments.model_setup`), its class's defaults filled in."""
    from densim.models import model_defaults

    settings = {**model_defaults(setup.model), **setup.hyperparameters}
    return settings.get("hidden", 1) ** 2 * settings.get("num_layers", 1)


def group(config: dict, job: Job) -> str:
    """Which measured jobs price ``job``: those of the same rule and model (training), generator (networks) or
    protocol (trajectories); every evaluation job (it evaluates several models) those of its rule."""
    values = job.values
    if job.rule == "training":
        from densim.models import model_variant

        return f"{job.rule}:{model_variant(values['model'])[0]}"
    if job.rule == "networks":
        return f"{job.rule}:{config['datasets'][values['dataset']]['generator']}"
    if job.rule == "trajectories":
        return f"{job.rule}:{dataset_protocol(config, values['dataset'])}"
    return job.rule


def work(config: dict, job: Job) -> float:
    """The job's units of work (the module's table): what its measured cost per unit is multiplied by."""
    values = job.values
    dataset = values.get("dataset")
    nodes = dataset_nodes(config, dataset) if dataset else config["packing"]["nodes"]
    member = config["datasets"][dataset].get("union", [dataset])[0] if dataset else None
    section = trajectory_section(config, member) if member else config["trajectories"]
    frames = section["frames"] or REGIMES[section["dynamics"]]["frames"]
    if job.rule == "networks":
        return float(nodes**2)
    if job.rule == "trajectories":
        protocol = PROTOCOLS[dataset_protocol(config, values["dataset"])]
        steps = protocol.md_settings(md_settings(section), protocol.settings(section)).steps_per_frame
        return float(nodes * frames * steps)
    if job.rule == "spectra":
        return float(nodes)
    if job.rule == "training_statistics":
        return float(_networks(config, values["dataset"]) * config["training"]["horizon"] * nodes)
    if job.rule == "training":
        return _run_work(config, values["dataset"], values["model"], int(values["history"]), frames, "training")
    if job.rule == "evaluation":
        runs = [(m, h) for d, m, h, s in evaluation_grids(config)[values["grid"]] if d == dataset and s == int(values["seed"])]
        return sum(_run_work(config, dataset, model, history, frames, "evaluation") for model, history in runs)
    if stage_of(job.rule) == "figures":
        grids = evaluation_grids(config)
        return float(len(grids.get(job.rule, grids["main"])))
    return 1.0


def _run_work(config: dict, dataset: str, model_key: str, history: int, frames: int, rule: str) -> float:
    """The units of work of training or evaluating one run (none for a baseline)."""
    from densim.experiments import model_setup

    if model_variant(model_key)[0] in BASELINES:
        return 0.0
    setup = model_setup(model_key, config["models"], config["training"])
    model, nodes = _model_work(setup), dataset_nodes(config, dataset)
    if rule == "training":
        training = setup.training
        return float(training.steps * training.batch_size * training.unrolled_steps(history) * nodes * model)
    start = config["evaluation"]["start_frame"]
    last_input = history if start is None else start
    return float(_test_networks(config, dataset) * (frames - last_input - 1) * nodes * model)


@dataclass
class Measured:
    """Measured seconds per unit of work per cost group, and fixed seconds per job per rule and per cost group (CPU
    and wall)."""

    cpu: dict[str, float]
    wall: dict[str, float]
    fixed_cpu: dict[str, float]
    fixed_wall: dict[str, float]
    jobs: dict[str, int]

    def seconds(self, key: str, rule: str, units: float) -> tuple[float, float] | None:
        """CPU and wall seconds of a job of cost group ``key`` and rule ``rule`` with ``units`` of work; None when
        nothing of its rule was measured. A group never measured is priced at its rule's mean rate."""
        rates = []
        for table in (self.cpu, self.wall):
            if key in table:
                rates.append(table[key])
                continue
            fallback = [value for name, value in table.items() if name.split(":")[0] == rule]
            rates.append(sum(fallback) / len(fallback) if fallback else None)
        if None in rates and not (units == 0 and rule in self.fixed_wall):
            return None
        return (self.fixed_cpu.get(key, self.fixed_cpu.get(rule, 0.0)) + (rates[0] or 0.0) * units,
                self.fixed_wall.get(key, self.fixed_wall.get(rule, 0.0)) + (rates[1] or 0.0) * units)


def read_benchmark(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one Snakemake benchmark file (the mean over its rows).

    Raises
    ------
    ValueError
        Naming the file, when it has no ``s`` column or no rows.
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column or no rows)")

    def number(row, key):
        try:
            return float(row[key])
        except (KeyError, TypeError, ValueError):
            return math.nan

    wall = sum(number(row, "s") for row in rows) / len(rows)
    cpu = sum(number(row, "cpu_time") for row in rows) / len(rows)
    return wall, cpu if math.isfinite(cpu) and cpu > 0 else wall


def measure(benchmarks: Path, config: dict, jobs: Sequence[Job]) -> Measured:
    """Costs from the benchmark files under ``benchmarks`` (``logs/benchmarks``) of the measured run's ``jobs``
    (:func:`dag_jobs` of its config), its ``config`` giving each job's units: jobs without units of work (the
    baselines' training and evaluation jobs) give their rule's fixed cost, the others (less that fixed cost) their
    group's cost per unit. Jobs whose benchmark is not there are not measured."""
    measured = []
    for job in jobs:
        path = Path(benchmarks) / Path(job.benchmark).relative_to("logs/benchmarks") if job.benchmark else None
        if path is None or not path.exists():
            continue
        measured.append((job.rule, group(config, job), work(config, job), *read_benchmark(path)))
    fixed = defaultdict(list)
    for rule, _, size, wall, cpu in measured:
        if size == 0:
            fixed[rule].append((cpu, wall))
    fixed_cpu = {rule: sum(c for c, _ in rows) / len(rows) for rule, rows in fixed.items()}
    fixed_wall = {rule: sum(w for _, w in rows) / len(rows) for rule, rows in fixed.items()}
    sums = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for rule, key, size, seconds, cpu_seconds in measured:
        if size > 0:
            total = sums[(rule, key)]
            total[0] += cpu_seconds
            total[1] += seconds
            total[2] += size
            total[3] += 1
    count = Counter(key for _, key, *_ in measured)
    cpu, wall = {}, {}
    for (rule, key), (cpu_total, wall_total, units, jobs) in sums.items():
        # A group's fixed cost is its rule's, but never more than the group's own mean: the excess over it is the
        # cost per unit, so the measured run itself is priced at exactly what its benchmarks recorded.
        for rates, fixed_table, total in ((cpu, fixed_cpu, cpu_total), (wall, fixed_wall, wall_total)):
            if rule in fixed_table:
                fixed_table[key] = min(fixed_table[rule], total / jobs)
            rates[key] = (total - fixed_table.get(key, 0.0) * jobs) / units
    return Measured(cpu, wall, fixed_cpu, fixed_wall, dict(count))


@dataclass
class StageCost:
    stage: str
    jobs: int
    priced: int
    cpu_hours: float
    wall_hours: float
    longest_job_hours: float
    gpu_hours: float


def estimate(config: dict, measured: Measured, jobs: Sequence[Job]) -> tuple[list[StageCost], Counter]:
    """Jobs, CPU-hours, summed wall-hours, the longest job and GPU-hours per stage of a run of ``config`` whose jobs
    are ``jobs`` (:func:`dag_jobs`), and the number of jobs per cost group that nothing measured could price."""
    rows: dict[str, StageCost] = {}
    unpriced: Counter = Counter()
    gpus = config["cluster"]["training_gpus"]
    for job in jobs:
        stage = stage_of(job.rule)
        row = rows.setdefault(stage, StageCost(stage, 0, 0, 0.0, 0.0, 0.0, 0.0))
        row.jobs += 1
        seconds = measured.seconds(group(config, job), job.rule, work(config, job))
        if seconds is None:
            unpriced[group(config, job)] += 1
            continue
        cpu, wall = seconds[0] / 3600, seconds[1] / 3600
        row.priced += 1
        row.cpu_hours += cpu
        row.wall_hours += wall
        row.longest_job_hours = max(row.longest_job_hours, wall)
        if job.rule == "training":
            row.gpu_hours += wall * gpus
    return sorted(rows.values(), key=lambda row: STAGES.index(row.stage)), unpriced


def format_estimate(rows: list[StageCost], measured_jobs: int, unpriced: Counter | None = None) -> str:
    """The estimate as a Markdown table, with a total line and the jobs it could not price."""
    def hours(value):
        return f"{value:.3g}"

    lines = ["| stage | jobs | priced from measurements | CPU-hours | wall-hours (sum) | longest job [h] | GPU-hours |",
             "|:--|--:|--:|--:|--:|--:|--:|"]
    for row in rows:
        lines.append(f"| {row.stage} | {row.jobs} | {row.priced} | {hours(row.cpu_hours)} | {hours(row.wall_hours)} | "
                     f"{hours(row.longest_job_hours)} | {hours(row.gpu_hours)} |")
    total = StageCost("total", sum(r.jobs for r in rows), sum(r.priced for r in rows), sum(r.cpu_hours for r in rows),
                      sum(r.wall_hours for r in rows), max((r.longest_job_hours for r in rows), default=0.0), sum(r.gpu_hours for r in rows))
    lines.append(f"| **total** | {total.jobs} | {total.priced} | {hours(total.cpu_hours)} | {hours(total.wall_hours)} | "
                 f"{hours(total.longest_job_hours)} | {hours(total.gpu_hours)} |")
    lines.append(f"\nPer-unit costs from {measured_jobs} measured jobs; a job is priced from its rule's measured jobs of the "
                 "same model, generator or protocol, else from the mean over its rule's; unpriced jobs add nothing.")
    if unpriced:
        names = ", ".join(f"{key} ({count})" for key, count in sorted(unpriced.items()))
        lines.append(f"Not priced (no measured job of their rule): {names}.")
    return "\n".join(lines)
