"""Each simulator's speed held against this machine's own limit: achieved GFLOP/s of a training and a rollout step.

For each model at the given width and depth (default hidden 128 and 4 layers, the fidelity preset's) and each
network size (default 200 and 5,000 disks), on a batch of 8:

- a training step: the one-step loss of 8 windows of one compressed network (batched into one PyG ``Batch``),
  backward, gradient clipping and an Adam step, as ``densim.training`` does it;
- a rollout step: one step of 8 trajectories advanced together (:func:`densim.rollout.rollouts`, as the evaluation
  stage does it), averaged over ``--rollout-steps`` steps.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions, forward and
backward. The gathers and scatters of message passing, the elementwise work and the optimiser count 0: they move
memory rather than compute, so a model dominated by them shows a low fraction. Times are medians of ``--repeats``
after a warm-up. The machine's limit is the rate of a dense float32 matrix product (``torch.mm`` of 2048 x 2048,
best of 5), measured in the same run at the same thread count; the last columns give each step's achieved rate
as a fraction of it.

Before and after a change, in one run: ``--against REV`` measures the package of git revision ``REV`` (its ``src/``,
extracted to a temporary folder) and this checkout's, alternately, each model in a fresh process per side and round
(``--rounds``, best of them), with this script as the harness for both, and prints each step's time before and after
and their ratio.

Run: ``python benchmarks/bench_roofline.py [--nodes 200 5000] [--models spatial nlsf_norm ...] [--hidden 128]
[--layers 4] [--batch 8] [--threads N] [--against REV [--rounds 2]]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench_models import HISTORY, compressed_graph, median_time, model_hyperparameters
from densim.md import MDSettings
from densim.models import BASELINES, MODELS, build_simulator
from densim.rollout import rollouts
from densim.training import TrainingConfig, _windows, compute_statistics


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """Best dense float32 ``torch.mm`` rate of this machine at the current thread count, GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def counted_flops(func) -> int:
    with FlopCounterMode(display=False) as counter:
        func()
    return counter.get_total_flops()


def steps_of(key: str, graph, config: TrainingConfig, hyperparameters: dict, batch: int, rollout_steps: int, compile: bool = False):
    """The training step and the rollout of ``rollout_steps`` steps of one model, as callables (None: closed form);
    ``compile``: the network wrapped in ``torch.compile(dynamic=True)`` (batches of other node counts reuse it)."""
    simulator = build_simulator(key, HISTORY, compute_statistics([graph], config), seed=0, hyperparameters=hyperparameters, **config.family)
    if compile and not simulator.closed_form:
        simulator.network = torch.compile(simulator.network, dynamic=True)
    windows = _windows([graph], HISTORY, dataclasses.replace(config, windows="everywhere"))
    windows = [windows[i % len(windows)] for i in range(batch)]
    if simulator.closed_form:
        train = None
    else:
        optimiser = torch.optim.Adam(simulator.parameters(), lr=1e-4)

        def train():
            simulator.train()
            loss = simulator.loss([graph], windows)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(simulator.parameters(), 1.0)
            optimiser.step()

    def rollout():
        simulator.eval()
        rollouts(simulator, [graph] * batch, rollout_steps)

    return train, rollout


def measure(args) -> list[dict]:
    """One row per (network, model): FLOPs and median seconds of its training and rollout steps (None: closed form)."""
    frames = max(12, HISTORY + 2 + args.rollout_steps)
    config = TrainingConfig(horizon=frames)
    rows = []
    for nodes in args.nodes:
        settings = MDSettings(frames=frames, steps_per_frame=50, strain=0.005 * (frames - 1) / 11)
        graph = compressed_graph(nodes, args.k, args.seed, settings)
        for key in args.models:
            train, rollout = steps_of(key, graph, config, model_hyperparameters(key, args.hidden, args.layers, args.k), args.batch,
                                      args.rollout_steps, args.compile)
            row = {"model": key, "nodes": int(graph.positions.shape[0])}
            for name, func, per in (("train", train, 1), ("rollout", rollout, args.rollout_steps)):
                row[name] = None if func is None else {"flops": counted_flops(func) / per,
                                                       "seconds": median_time(func, args.repeats, torch.device("cpu")) / per}
            rows.append(row)
    return rows


def _cell(step: dict | None, peak: float) -> str:
    if step is None:
        return f"{'closed form':>12} {'':>9} {'':>8} {'':>8}"
    rate = step["flops"] / step["seconds"] / 1e9
    return f"{step['flops'] / 1e9:>12.3f} {step['seconds'] * 1e3:>9.2f} {rate:>8.2f} {rate / peak:>8.1%}"


def against(args, peak: float) -> None:
    """Each model's steps with the package of revision ``args.against`` and with this checkout's, alternately."""
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "-C", str(here.parent), "archive", args.against, "src"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        sources = {"before": Path(folder) / "src", "after": here.parent / "src"}
        print(f"before: {args.against}; after: this checkout; best of {args.rounds} rounds, each side in a fresh process\n")
        print(f"{'model':<14} {'nodes':>6} {'train ms':>10} {'after':>9} {'speed-up':>9} {'of peak':>8}   "
              f"{'rollout ms':>10} {'after':>9} {'speed-up':>9} {'of peak':>8}")
        for nodes in args.nodes:
            for key in args.models:
                best = {}
                for _ in range(args.rounds):
                    for side, source in sources.items():
                        command = [sys.executable, __file__, "--json", "--nodes", str(nodes), "--models", key, "--hidden", str(args.hidden),
                                   "--layers", str(args.layers), "--k", str(args.k), "--batch", str(args.batch), "--repeats", str(args.repeats),
                                   "--rollout-steps", str(args.rollout_steps), "--threads", str(args.threads), "--seed", str(args.seed),
                                   *(["--compile"] if args.compile else [])]
                        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), str(here)])}
                        row = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)[0]
                        for step in ("train", "rollout"):
                            if row[step] is not None:
                                old = best.get((side, step))
                                best[(side, step)] = row[step] if old is None or row[step]["seconds"] < old["seconds"] else old
                        best["nodes"] = row["nodes"]
                cells = []
                for step in ("train", "rollout"):
                    if ("after", step) not in best:
                        cells.append(f"{'closed form':>10} {'':>9} {'':>9} {'':>8}")
                        continue
                    before, after = best[("before", step)], best[("after", step)]
                    rate = after["flops"] / after["seconds"] / 1e9
                    cells.append(f"{before['seconds'] * 1e3:>10.2f} {after['seconds'] * 1e3:>9.2f} {before['seconds'] / after['seconds']:>8.2f}x "
                                 f"{rate / peak:>8.1%}")
                print(f"{key:<14} {best['nodes']:>6} {cells[0]}   {cells[1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[200, 5000], help="disks per packing (default 200 5000)")
    parser.add_argument("--models", nargs="+", default=[key for key in MODELS if key not in BASELINES], help="model keys (default: every learned model)")
    parser.add_argument("--hidden", type=int, default=128, help="latent width (default 128)")
    parser.add_argument("--layers", type=int, default=4, help="processor blocks (default 4)")
    parser.add_argument("--k", type=int, default=64, help="eigenpairs per network (default 64)")
    parser.add_argument("--batch", type=int, default=8, help="windows per training step and trajectories per rollout step (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="median of this many timed runs (default 5)")
    parser.add_argument("--rollout-steps", type=int, default=4, help="steps per timed rollout (default 4)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help=f"torch threads (default {torch.get_num_threads()})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="wrap each network in torch.compile (its compilation is in the warm-up, not the times)")
    parser.add_argument("--against", metavar="REV", help="also measure the package of this git revision, for before and after")
    parser.add_argument("--rounds", type=int, default=2, help="with --against: alternating rounds per side, best taken (default 2)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one side of --against: rows as JSON
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.json:
        print(json.dumps(measure(args)))
        return
    peak = matmul_rate()
    print(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; dense float32 matmul: {peak:.1f} GFLOP/s\n"
          f"hidden {args.hidden}, {args.layers} layers, k = {args.k}, batch {args.batch}, median of {args.repeats}")
    if args.against:
        against(args, peak)
        return
    print(f"\n{'model':<14} {'nodes':>6} {'train GFLOP':>12} {'ms':>9} {'GFLOP/s':>8} {'of peak':>8}   "
          f"{'rollout GFLOP':>13} {'ms':>9} {'GFLOP/s':>8} {'of peak':>8}")
    for row in measure(args):
        print(f"{row['model']:<14} {row['nodes']:>6} {_cell(row['train'], peak)}   {_cell(row['rollout'], peak):>13}", flush=True)


if __name__ == "__main__":
    main()
