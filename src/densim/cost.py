"""What a configuration will cost before it runs: its jobs per stage, and CPU-, wall- and GPU-hours scaled from
the per-job costs a finished run measured.

Every rule of the workflow writes a Snakemake benchmark (``logs/benchmarks/{rule}/{wildcards}.tsv``: wall seconds
``s`` and ``cpu_time``) for each job it runs. :func:`estimate` lists the jobs another configuration asks for
(:func:`jobs`, the same grids the workflow expands: :mod:`densim.experiments`) and prices each at the measured
cost per unit of work of its rule (and its model, generator or protocol where those differ), times its own units.
The units are each stage's dominant term, assumed rather than fitted:

========================  ==============================================================================
network                   nodes² (per generator: each optimises or prunes against linear-response moduli)
trajectory                nodes × frames × MD steps per frame (per protocol)
spectra                   nodes
statistics                networks × training horizon × nodes
train                     optimiser steps × batch × loss steps × nodes × hidden² × layers (per model)
evaluate                  test networks × rollout steps × nodes × hidden² × layers (per model)
figures and tables        evaluation files read
others                    one unit per job
========================  ==============================================================================

Train and evaluation jobs also have a fixed cost (starting Python and PyTorch, reading the split, validation
rollouts) that does not grow with the optimiser steps: it is measured as the mean cost of the baselines' jobs
(``frozen``, ``linear_floor``: fitted in closed form, no optimiser steps) of the same rule, and only the rest of a
learned model's job is scaled; other rules are scaled whole. Validation inside training is thereby counted as fixed.
GPU-hours are the train jobs' wall time times ``cluster.training_gpus``, scaled from wall times measured on the
device the measured run trained on (``--measured-device``): CPU measurements give an upper bound, not a GPU time.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from densim.experiments import (built_datasets, dataset_protocol, evaluation_grids, igns_grid, network_count, network_datasets, run_datasets, run_unions,
                                trajectory_section)
from densim.splits import SplitFractions, split_networks
from densim.models import BASELINES, model_variant
from densim.protocols import PROTOCOLS, md_settings

#: Stage of each rule, in the order the workflow runs them.
STAGES = {
    "network": "networks", "network_manifest": "networks",
    "trajectory": "trajectories", "trajectory_summary": "trajectories",
    "spectra": "spectra",
    "split": "splits", "union_split": "splits",
    "statistics": "training", "train": "training",
    "evaluate": "evaluation",
    "rollout_accuracy": "figures", "history": "figures", "modes_and_bias": "figures", "igns_ablation": "figures", "tables": "figures", "regime": "figures",
}
#: The wildcards a rule's benchmark path holds, in order (``logs/benchmarks/{rule}/...``).
WILDCARDS = {
    "network": ("dataset", "network"), "trajectory": ("dataset", "network"), "spectra": ("dataset", "network"),
    "network_manifest": ("dataset",), "split": ("dataset", "seed"), "union_split": ("dataset", "seed"),
    "statistics": ("dataset", "seed"), "train": ("dataset", "model", "history", "seed"),
    "evaluate": ("dataset", "model", "history", "seed"),
}


@dataclass(frozen=True)
class Job:
    """One job of the workflow: its rule and its wildcards."""

    rule: str
    wildcards: tuple[tuple[str, str], ...] = ()

    @property
    def values(self) -> dict:
        return dict(self.wildcards)


def _job(rule: str, **wildcards) -> Job:
    return Job(rule, tuple((key, str(value)) for key, value in wildcards.items()))


def jobs(config: dict) -> list[Job]:
    """Every job a run of ``config`` from scratch consists of (Snakemake's target rule ``all`` aside)."""
    simulated, used, unions = built_datasets(config), run_datasets(config), run_unions(config)
    seeds, grids = config["seeds"], evaluation_grids(config)
    out = []
    for dataset in network_datasets(config):
        networks = [f"{i:04d}" for i in range(network_count(config, dataset))]
        out += [_job(rule, dataset=dataset, network=n) for rule in ("network", "spectra") for n in networks]
        out.append(_job("network_manifest", dataset=dataset))
    for dataset in simulated:
        out += [_job("trajectory", dataset=dataset, network=f"{i:04d}") for i in range(network_count(config, dataset))]
    out.append(_job("trajectory_summary"))
    out += [_job("split", dataset=d, seed=s) for d in simulated for s in seeds]
    out += [_job("union_split", dataset=d, seed=s) for d in unions for s in seeds]
    out += [_job("statistics", dataset=d, seed=s) for d in used for s in seeds]
    runs = list(dict.fromkeys(run for grid in grids.values() for run in grid))
    for rule in ("train", "evaluate"):
        out += [_job(rule, dataset=d, model=m, history=h, seed=s) for d, m, h, s in runs]
    ablation = config["experiments"]["history_ablation"]
    notebooks = ["rollout_accuracy", "modes_and_bias", "tables"]
    notebooks += ["history"] if ablation["models"] and ablation["datasets"] else []
    notebooks += ["igns_ablation"] if igns_grid(config) else []
    notebooks += ["regime"] if config["tables"]["regime"] else []
    out += [_job(notebook) for notebook in notebooks]
    return out


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
    """hidden² x layers of a resolved model (:func:`densim.training.model_setup`), its class's defaults filled in."""
    from densim.models import model_defaults

    settings = {**model_defaults(setup.model), **setup.hyperparameters}
    return settings.get("hidden", 1) ** 2 * settings.get("num_layers", 1)


def group(config: dict, job: Job) -> str:
    """Which measured jobs price ``job``: those of the same rule and model (train, evaluate), generator (network)
    or protocol (trajectory)."""
    values = job.values
    if job.rule in ("train", "evaluate"):
        from densim.models import model_variant

        return f"{job.rule}:{model_variant(values['model'])[0]}"
    if job.rule == "network":
        return f"network:{config['datasets'][values['dataset']]['generator']}"
    if job.rule == "trajectory":
        return f"trajectory:{dataset_protocol(config, values['dataset'])}"
    return job.rule


def work(config: dict, job: Job) -> float:
    """The job's units of work (the module's table): what its measured cost per unit is multiplied by."""
    values, nodes = job.values, config["packing"]["nodes"]
    dataset = values.get("dataset")
    member = config["datasets"][dataset].get("union", [dataset])[0] if dataset else None
    section = trajectory_section(config, member) if member else config["trajectories"]
    frames = section["frames"]
    if job.rule == "network":
        return float(nodes**2)
    if job.rule == "trajectory":
        protocol = PROTOCOLS[dataset_protocol(config, values["dataset"])]
        steps = protocol.md_settings(md_settings(section), protocol.settings(section)).steps_per_frame
        return float(nodes * frames * steps)
    if job.rule == "spectra":
        return float(nodes)
    if job.rule == "statistics":
        return float(_networks(config, values["dataset"]) * config["training"]["horizon"] * nodes)
    if job.rule in ("train", "evaluate"):
        from densim.training import model_setup

        if model_variant(values["model"])[0] in BASELINES:
            return 0.0
        history = int(values["history"])
        setup = model_setup(values["model"], config["models"], config["training"])
        model = _model_work(setup)
        if job.rule == "train":
            training = setup.training
            return float(training.steps * training.batch_size * training.unrolled_steps(history) * nodes * model)
        start = config["evaluation"]["start_frame"]
        last_input = history if start is None else start
        return float(_test_networks(config, values["dataset"]) * (frames - last_input - 1) * nodes * model)
    if job.rule in STAGES and STAGES[job.rule] == "figures":
        grids = evaluation_grids(config)
        return float(len(grids.get(job.rule, grids["main"])))
    return 1.0


@dataclass
class Measured:
    """Measured seconds per unit of work per cost group, and fixed seconds per job per rule (CPU and wall)."""

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
        return (self.fixed_cpu.get(rule, 0.0) + (rates[0] or 0.0) * units,
                self.fixed_wall.get(rule, 0.0) + (rates[1] or 0.0) * units)


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


def measure(benchmarks: Path, config: dict) -> Measured:
    """Costs from every benchmark under ``benchmarks`` (``logs/benchmarks``), the measured run's ``config`` giving
    each job's units: jobs without units of work (the baselines' train and evaluate jobs) give their rule's fixed
    cost, the others (less that fixed cost) their group's cost per unit."""
    measured = []
    for path in sorted(Path(benchmarks).rglob("*.tsv")):
        parts = path.relative_to(benchmarks).with_suffix("").parts
        rule = parts[0]
        if rule not in STAGES:
            continue
        names = WILDCARDS.get(rule, ())
        values = [part.removeprefix("h").removeprefix("seed") if name in ("history", "seed") else part
                  for name, part in zip(names, parts[1:])]
        job = _job(rule, **dict(zip(names, values)))
        try:
            key, size = group(config, job), work(config, job)
        except (KeyError, ValueError):
            continue  # a job of a dataset or model the measured config no longer has
        measured.append((rule, key, size, *read_benchmark(path)))
    fixed = defaultdict(list)
    for rule, _, size, wall, cpu in measured:
        if size == 0:
            fixed[rule].append((cpu, wall))
    fixed_cpu = {rule: sum(c for c, _ in rows) / len(rows) for rule, rows in fixed.items()}
    fixed_wall = {rule: sum(w for _, w in rows) / len(rows) for rule, rows in fixed.items()}
    cpu, wall, units, count = defaultdict(float), defaultdict(float), defaultdict(float), defaultdict(int)
    for rule, key, size, seconds, cpu_seconds in measured:
        count[key] += 1
        if size > 0:
            cpu[key] += max(cpu_seconds - fixed_cpu.get(rule, 0.0), 0.0)
            wall[key] += max(seconds - fixed_wall.get(rule, 0.0), 0.0)
            units[key] += size
    return Measured({k: cpu[k] / units[k] for k in units}, {k: wall[k] / units[k] for k in units}, fixed_cpu, fixed_wall, dict(count))


@dataclass
class StageCost:
    stage: str
    jobs: int
    priced: int
    cpu_hours: float
    wall_hours: float
    longest_job_hours: float
    gpu_hours: float


def estimate(config: dict, measured: Measured) -> list[StageCost]:
    """Jobs, CPU-hours, summed wall-hours, the longest job and GPU-hours per stage of a run of ``config``."""
    rows: dict[str, StageCost] = {}
    gpus = config["cluster"]["training_gpus"]
    for job in jobs(config):
        stage = STAGES[job.rule]
        row = rows.setdefault(stage, StageCost(stage, 0, 0, 0.0, 0.0, 0.0, 0.0))
        row.jobs += 1
        seconds = measured.seconds(group(config, job), job.rule, work(config, job))
        if seconds is None:
            continue
        cpu, wall = seconds[0] / 3600, seconds[1] / 3600
        row.priced += 1
        row.cpu_hours += cpu
        row.wall_hours += wall
        row.longest_job_hours = max(row.longest_job_hours, wall)
        if job.rule == "train":
            row.gpu_hours += wall * gpus
    order = list(dict.fromkeys(STAGES.values()))
    return sorted(rows.values(), key=lambda row: order.index(row.stage))


def format_estimate(rows: list[StageCost], measured_jobs: int) -> str:
    """The estimate as a Markdown table, with a total line."""
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
    return "\n".join(lines)
