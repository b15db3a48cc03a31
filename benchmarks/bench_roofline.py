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

Run: ``python benchmarks/bench_roofline.py [--nodes 200 5000] [--models spatial nlsf_norm ...] [--hidden 128]
[--layers 4] [--batch 8] [--threads N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

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


def steps_of(key: str, graph, config: TrainingConfig, hyperparameters: dict, batch: int, rollout_steps: int):
    """The training step and the rollout of ``rollout_steps`` steps of one model, as callables (None: closed form)."""
    simulator = build_simulator(key, HISTORY, compute_statistics([graph], config), seed=0, hyperparameters=hyperparameters, **config.family)
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_rate()
    print(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; dense float32 matmul: {peak:.1f} GFLOP/s\n"
          f"hidden {args.hidden}, {args.layers} layers, k = {args.k}, batch {args.batch}, median of {args.repeats}")
    frames = max(12, HISTORY + 2 + args.rollout_steps)
    config = TrainingConfig(horizon=frames)
    cpu = torch.device("cpu")
    print(f"\n{'model':<14} {'nodes':>6} {'train GFLOP':>12} {'ms':>9} {'GFLOP/s':>8} {'of peak':>8}   "
          f"{'rollout GFLOP':>13} {'ms':>9} {'GFLOP/s':>8} {'of peak':>8}")
    for nodes in args.nodes:
        settings = MDSettings(frames=frames, steps_per_frame=50, strain=0.005 * (frames - 1) / 11)
        graph = compressed_graph(nodes, args.k, args.seed, settings)
        for key in args.models:
            train, rollout = steps_of(key, graph, config, model_hyperparameters(key, args.hidden, args.layers, args.k), args.batch,
                                      args.rollout_steps)
            cells = []
            for func, per in ((train, 1), (rollout, args.rollout_steps)):
                if func is None:
                    cells.append(f"{'closed form':>12} {'':>9} {'':>8} {'':>8}")
                    continue
                flops = counted_flops(func) / per
                seconds = median_time(func, args.repeats, cpu) / per
                rate = flops / seconds / 1e9
                cells.append(f"{flops / 1e9:>12.3f} {seconds * 1e3:>9.2f} {rate:>8.2f} {rate / peak:>8.1%}")
            print(f"{key:<14} {graph.positions.shape[0]:>6} {cells[0]}   {cells[1]:>13}", flush=True)


if __name__ == "__main__":
    main()
