"""Benchmark of the evaluation stage: the cost of one evaluation job, batched vs one trajectory at a time.

An evaluation job (``densim evaluation``) rolls one trained simulator out on every test trajectory of its split
and scores every step. For each scale (the embedded default ``config.yaml``, and the paper preset on top of it)
this makes one network of the scale's size, compresses it in LAMMPS for the scale's frames in its dynamical
regime (the trajectories stage's own code), and times ``densim.evaluation.evaluate`` on as many copies of it as
the scale's test split holds, with each model at the scale's width and depth (weights as initialised: the cost
does not depend on them):

- batched: all test trajectories advanced together, one batched network call per step (what the stage does);
- one at a time: each trajectory rolled out alone (the same numbers, ``evaluate(..., batched=False)``).

It prints seconds per evaluation job (without process start-up and file reading), the ratio, and the stage's
total at that scale (jobs x seconds, main grid and history ablation). Run:
``python benchmarks/bench_evaluation.py [--scales default paper] [--models spatial nlsf_norm ...] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import yaml

from bench_models import compressed_graph, median_time, model_hyperparameters
from densim.md import MDSettings
from densim.config import default
from densim.evaluation import evaluate
from densim.models import MODELS, build_simulator
from densim.splits import SplitFractions, split_networks
from densim.training import TrainingConfig, compute_statistics

ROOT = Path(__file__).resolve().parents[1]
SCALES = {"default": ["config.yaml"], "paper": ["config.yaml", "workflow/presets/paper.yaml"]}


def merged_config(files: list[str]) -> dict:
    """The config of Snakemake's ``--configfile`` sequence: later files update earlier ones, section by section."""
    config: dict = {}
    for name in files:
        for key, value in yaml.safe_load((ROOT / name).read_text()).items():
            config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
    return config


def evaluation_jobs(config: dict) -> int:
    """Evaluation jobs of a config: the main grid and the history ablation (whose configured histories overlap)."""
    experiments = config.get("experiments", {})
    models = experiments.get("models", list(MODELS))
    histories = experiments.get("histories", list(default("experiments.histories")))
    ablation = {**{key: list(default(f"experiments.history_ablation.{key}")) for key in ("models", "histories", "datasets")},
                **experiments.get("history_ablation", {})}
    grid = {(d, m, h) for d in config["datasets"] for m in models for h in histories}
    grid |= {(d, m, h) for d in ablation["datasets"] for m in ablation["models"] for h in ablation["histories"]}
    return len(grid) * len(config["seeds"])


def test_trajectories(config: dict) -> int:
    """Test trajectories per evaluation of the largest generated dataset."""
    networks = max(section.get("networks", 0) for section in config["datasets"].values())
    refs = [f"d/{i:04d}" for i in range(networks)]
    return len(split_networks(refs, SplitFractions(**config.get("splits", {})), 0)["test"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", choices=list(SCALES), default=list(SCALES))
    parser.add_argument("--models", nargs="+", default=["spatial", "chebnet", "nlsf_norm", "s2_nlsf_norm", "linear_floor", "frozen"],
                        help="model keys (default: spatial, chebnet, nlsf_norm, s2_nlsf_norm and the baselines)")
    parser.add_argument("--repeats", type=int, default=1, help="median of this many timed runs after one warm-up (default 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{os.cpu_count()} CPUs, {torch.get_num_threads()} threads'})")
    for scale in args.scales:
        config = merged_config(SCALES[scale])
        trajectories = config.get("trajectories", {})
        settings = MDSettings(dynamics=trajectories.get("dynamics", default("trajectories.dynamics")),
                                       frames=trajectories.get("frames", default("trajectories.frames")))
        k, history = config.get("spectra", {}).get("k", default("spectra.k")), config["experiments"]["histories"][0]
        start = time.perf_counter()
        graph = compressed_graph(config["packing"]["nodes"], k, args.seed, settings).to(device)
        tests, jobs = test_trajectories(config), evaluation_jobs(config)
        print(f"\n{scale}: N = {graph.positions.shape[0]} nodes, {graph.frames} frames ({settings.dynamics}), {tests} test trajectories of "
              f"{graph.frames - history - 1} steps, history {history}, {jobs} evaluation jobs (trajectory made in {time.perf_counter() - start:.1f} s)")
        print(f"  {'model':<14}{'batched':>12}{'one at a time':>16}{'ratio':>8}{'stage, batched':>17}")
        statistics = compute_statistics([graph], TrainingConfig(horizon=min(graph.frames, 20)))
        for key in args.models:
            section = config.get("models", {}).get(key, {})
            hyperparameters = model_hyperparameters(key, section.get("hidden", 32), section.get("num_layers", 2), k)
            simulator = build_simulator(key, history, statistics, seed=0, hyperparameters=hyperparameters).to(device)
            batch = [graph] * tests
            together = median_time(lambda: evaluate(simulator, batch), args.repeats, device)
            alone = median_time(lambda: evaluate(simulator, batch, batched=False), args.repeats, device)
            print(f"  {key:<14}{together:>10.2f} s{alone:>14.2f} s{alone / together:>7.1f}x{jobs * together / 3600:>13.2f} h", flush=True)


if __name__ == "__main__":
    main()
