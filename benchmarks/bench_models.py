"""Benchmark of the simulators: training step and rollout step per model, at several network sizes.

For each node count, makes a jammed spring network, compresses it in LAMMPS for a few frames (the trajectory
stage's own code), takes its Laplacian eigenpairs (the spectra stage's code) and times, for every registered
model at the given width and depth:

- a training step: the loss of one window of the network (batched into a PyG ``Batch``; ``--loss-steps K``
  unrolls it K steps with gradients through them, as the multi-step loss does), backward, gradient clipping and
  an Adam step, as ``densim.training`` does it;
- a rollout step: one autoregressive step of ``densim.rollout.rollout`` (features, network, integrator and
  the zero-stress transverse box), averaged over the rollout.

Each time is the median of ``--repeats`` runs after one warm-up; the table ends with each model's time as a
ratio to the spatial model's, measured in the same run. Run:
``python benchmarks/bench_models.py [--nodes 200 1000 5000] [--hidden 128] [--layers 4] [--loss-steps 1] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np
import torch
import xarray as xr

from densim.md import MDSettings
from densim.models import BASELINES, MODELS, build_simulator
from densim.packing import contact_network, jammed_packing
from densim.rollout import rollout, trajectory_graph
from densim.spectra import topology_spectra
from densim.training import TrainingConfig, _windows, compute_statistics
from densim.trajectories import simulate

HISTORY = 2


def compressed_graph(nodes: int, k: int, seed: int, settings: MDSettings = MDSettings(frames=12, steps_per_frame=50, strain=0.005)):
    """A jammed network of ``nodes`` disks compressed in LAMMPS (a few frames by default), as a training/rollout graph."""
    network, _ = contact_network(jammed_packing(nodes, 0.92, 1.4, np.random.default_rng(seed)))
    run = simulate(network, settings, f"bench/{nodes}")
    trajectory = xr.Dataset(
        {
            "positions": (("time", "node", "xy"), run.positions),
            "box": (("time", "xy"), run.box),
            "bonds": (("bond", "end"), network.bonds),
            "rest_length": (("bond",), network.rest_lengths),
            "stiffness": (("bond",), network.stiffness),
        }
    )
    return trajectory_graph(trajectory, topology_spectra(network.num_nodes, network.bonds, k))


def median_time(func, repeats: int, device: torch.device) -> float:
    func()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        func()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_hyperparameters(key: str, hidden: int, layers: int, k: int) -> dict:
    """Width and depth of a learned model (none for the baselines), and its modes for spectral ones."""
    hyperparameters = {} if key in BASELINES else {"hidden": hidden, "num_layers": layers}
    if "num_modes" in getattr(MODELS[key], "block_parameters", dict)():
        hyperparameters["num_modes"] = k
    return hyperparameters


def time_model(key: str, graph, config: TrainingConfig, hyperparameters: dict, repeats: int, rollout_steps: int, device: torch.device,
               loss_steps: int = 1):
    simulator = build_simulator(key, HISTORY, compute_statistics([graph], config), seed=0, hyperparameters=hyperparameters,
                                **config.family).to(device)
    windows = _windows([graph], HISTORY, dataclasses.replace(config, windows="everywhere"), loss_steps)[:1]
    train_step = float("nan")
    if not simulator.closed_form:
        optimiser = torch.optim.Adam(simulator.parameters(), lr=1e-4)

        def step():
            loss = simulator.loss([graph], windows, loss_steps)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(simulator.parameters(), 1.0)
            optimiser.step()

        train_step = median_time(step, repeats, device)
    simulator.eval()
    rollout_step = median_time(lambda: rollout(simulator, graph, rollout_steps), repeats, device) / rollout_steps
    return train_step, rollout_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[200, 1000, 5000], help="disks per packing (default 200 1000 5000)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="model keys (default: all)")
    parser.add_argument("--hidden", type=int, default=128, help="latent width (default 128, the paper preset)")
    parser.add_argument("--layers", type=int, default=4, help="processor blocks (default 4, the paper preset)")
    parser.add_argument("--k", type=int, default=64, help="eigenpairs per network (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="median of this many timed runs (default 5)")
    parser.add_argument("--rollout-steps", type=int, default=8, help="rollout steps per timed rollout (default 8)")
    parser.add_argument("--loss-steps", type=int, default=1, help="steps K the training loss is unrolled over (default 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    frames = max(12, HISTORY + 2 + args.loss_steps)
    config = TrainingConfig(horizon=frames)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{os.cpu_count()} CPUs, {torch.get_num_threads()} threads'}), "
          f"hidden {args.hidden}, {args.layers} layers, k = {args.k}, loss over {args.loss_steps} step(s), median of {args.repeats}")

    results = {}
    for nodes in args.nodes:
        start = time.perf_counter()
        settings = MDSettings(frames=frames, steps_per_frame=50, strain=0.005 * (frames - 1) / 11)
        graph = compressed_graph(nodes, args.k, args.seed, settings).to(device)
        print(f"\nN = {graph.positions.shape[0]} nodes, {graph.bonds.shape[0]} bonds (network, trajectory and spectra in {time.perf_counter() - start:.1f} s)")
        for key in args.models:
            hyperparameters = model_hyperparameters(key, args.hidden, args.layers, args.k)
            train_step, rollout_step = time_model(key, graph, config, hyperparameters, args.repeats, args.rollout_steps, device,
                                                  args.loss_steps)
            results[key, nodes] = (train_step, rollout_step)
            train_text = f"{train_step * 1e3:9.2f} ms" if np.isfinite(train_step) else "   closed form"
            print(f"  {key:<14} train step {train_text}   rollout step {rollout_step * 1e3:9.2f} ms", flush=True)

    header = "".join(f"{f'train N={n}':>14}{f'rollout N={n}':>16}" for n in args.nodes)
    print(f"\ntimes in ms (ratio to spatial in the same run)\n{'model':<14}{header}")
    for key in args.models:
        cells = []
        for nodes in args.nodes:
            for column in (0, 1):
                value, reference = results[key, nodes][column], results.get(("spatial", nodes), (np.nan, np.nan))[column]
                cells.append(f"{value * 1e3:8.1f} ({value / reference:4.1f}x)" if np.isfinite(value) else f"{'-':>14}")
        print(f"{key:<14}" + "".join(f"{cell:>14}" if i % 2 == 0 else f"{cell:>16}" for i, cell in enumerate(cells)))


if __name__ == "__main__":
    main()
