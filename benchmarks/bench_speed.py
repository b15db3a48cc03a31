"""Speed at equal accuracy: LAMMPS against the learned simulators on one network of a finished run.

For one test trajectory (its network, trajectory and spectra files) and some trained checkpoints:

1. **MD.** The network's trajectory is simulated again in LAMMPS (the trajectory stage's own code, with the MD
   settings recorded in the trajectory file) at the configured timestep, then at timesteps larger by each divisor of the
   steps per frame, with proportionally fewer steps per frame (the same frames in physical time), until LAMMPS refuses the
   timestep as unstable for the network's stiffest mode. Each run is timed whole (relaxation included, as the
   stage runs it) and scored like a rollout: the mean over nodes of the distance to the reference frames, averaged
   over the frames a rollout predicts.
2. **Simulators.** Each checkpoint is rolled out over the same frames, alone (batch 1) and as 64 copies in one
   batched rollout (per trajectory: time / 64); its own error is scored the same way.
3. **Equal accuracy.** For each simulator, the largest MD timestep whose frames stay within that simulator's own
   error: the MD steps one simulator step replaces at that accuracy, and the speed-up of the rollout over that
   MD run (and over the configured one).

Times are medians of ``--repeats`` runs after one warm-up, measured in this run on this machine. Run, e.g.::

    python benchmarks/bench_speed.py --network results/networks/noi_pru/0007.nc \\
        --trajectory results/trajectories/noi_pru/0007.nc --spectra results/spectra/noi_pru/0007.nc \\
        --checkpoints results/training/noi_pru/*/h2/seed0/best.pt [--device cuda] [--output results/tables/speed.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from densim.md import MDSettings, SimulationError
from densim.evaluation import positional_errors
from densim.io import read_network, read_spectra, read_trajectory
from densim.models import load_simulator
from densim.rollout import rollout, rollouts, trajectory_graph
from densim.trajectories import simulate


def l2(predicted, reference) -> np.ndarray:
    """The evaluation's ``l2`` per frame (:func:`densim.evaluation.positional_errors`); frames x nodes x 2 arrays."""
    as_rollout = [torch.as_tensor(np.asarray(a), dtype=torch.float64).permute(1, 0, 2) for a in (predicted, reference)]
    return positional_errors(*as_rollout)["l2"]


def timed(function, repeats: int, synchronise=lambda: None):
    """Median wall seconds of ``repeats`` calls after one warm-up, and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        synchronise()
        start = time.perf_counter()
        result = function()
        synchronise()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def md_ladder(network, settings: MDSettings, reference: np.ndarray, first: int, repeats: int, name: str) -> list[dict]:
    """Time and score LAMMPS at the configured timestep and at larger ones (each divisor of the steps per frame, so
    the frames stay the same instants), until it is unstable."""
    rows = []
    for factor in [f for f in range(1, settings.steps_per_frame + 1) if settings.steps_per_frame % f == 0]:
        coarse = dataclasses.replace(settings, timestep=settings.timestep * factor, steps_per_frame=settings.steps_per_frame // factor)
        try:
            seconds, run = timed(lambda: simulate(network, coarse, name), repeats)
        except SimulationError as err:
            rows.append({"factor": factor, "timestep": coarse.timestep, "unstable": str(err).split(":", 1)[-1].strip()})
            break
        positions = np.asarray(run.positions)
        error = float(np.nanmean(l2(positions, reference)[first:])) if np.isfinite(positions).all() else float("inf")
        rows.append({"factor": factor, "timestep": coarse.timestep, "steps_per_frame": coarse.steps_per_frame, "seconds": seconds, "l2": error})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", required=True, type=Path)
    parser.add_argument("--trajectory", required=True, type=Path)
    parser.add_argument("--spectra", required=True, type=Path)
    parser.add_argument("--checkpoints", required=True, nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=64, help="trajectories in the batched rollout (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, help="also write the table (Markdown) and the numbers (JSON beside it)")
    args = parser.parse_args(argv)

    network, _ = read_network(args.network)
    trajectory = read_trajectory(args.trajectory)
    md = json.loads(trajectory.attrs["md_settings"])
    if "impact" in md:
        raise SystemExit(f"{args.trajectory}: an impact trajectory; this benchmark re-runs the compression protocol")
    settings = MDSettings(**md)
    reference = trajectory["positions"].values
    graph = trajectory_graph(trajectory, read_spectra(args.spectra))
    device = torch.device(args.device)
    synchronise = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    simulators = []
    for path in args.checkpoints:
        simulator, checkpoint = load_simulator(path, device)
        simulator.eval()
        on_device = graph.to(device)
        with torch.no_grad():
            one, predicted = timed(lambda: rollout(simulator, on_device), args.repeats, synchronise)
            many, _ = timed(lambda: rollouts(simulator, [on_device] * args.batch), args.repeats, synchronise)
        first = simulator.history + 1
        error = float(np.nanmean(l2(predicted.permute(1, 0, 2).cpu().numpy(), reference)[first:]))
        simulators.append({"model": checkpoint["run"]["model"], "history": simulator.history, "first": first, "l2": error,
                           "steps": reference.shape[0] - first, "batch_1_seconds": one, f"batch_{args.batch}_seconds_per_trajectory": many / args.batch})

    first = min(row["first"] for row in simulators)
    name = f"{trajectory.attrs['dataset']}/{trajectory.attrs['network']}"
    ladder = md_ladder(network, settings, reference, first, args.repeats, name)
    stable = [row for row in ladder if "seconds" in row]
    configured = stable[0]
    lines = [f"# Speed at equal accuracy: {name} ({reference.shape[1]} nodes, {reference.shape[0]} frames, device {device})", "",
             "MD (LAMMPS, the trajectory stage's settings; error: mean L2 [σ] over the predicted frames against the reference):", "",
             "| timestep | MD steps per frame | seconds | L2 vs reference |", "|--:|--:|--:|--:|"]
    for row in ladder:
        if "seconds" in row:
            lines.append(f"| {row['timestep']:g} | {row['steps_per_frame']} | {row['seconds']:.3g} | {row['l2']:.3g} |")
        else:
            lines.append(f"| {row['timestep']:g} | unstable: {row['unstable']} | | |")
    lines += ["", f"Simulators (rollout of {simulators[0]['steps']} steps; batch {args.batch}: seconds per trajectory):", "",
              f"| model | L2 [σ] | batch 1 [s] | batch {args.batch} [s] | equal-accuracy MD timestep | MD steps per simulator step "
              f"(configured / equal accuracy) | speed-up vs MD, batch 1 (configured / equal accuracy) | speed-up, batch {args.batch} |",
              "|:--|--:|--:|--:|--:|--:|--:|--:|"]
    for row in simulators:
        within = [md for md in stable if md["l2"] <= row["l2"]]
        equal = within[-1] if within else None
        many = row[f"batch_{args.batch}_seconds_per_trajectory"]
        if equal is None:
            eq_text, steps_text, one_text, many_text = "none: no MD run is within it", f"{configured['steps_per_frame']} / –", \
                f"{configured['seconds'] / row['batch_1_seconds']:.3g} / –", f"{configured['seconds'] / many:.3g} / –"
        else:
            eq_text = f"{equal['timestep']:g}"
            steps_text = f"{configured['steps_per_frame']} / {equal['steps_per_frame']}"
            one_text = f"{configured['seconds'] / row['batch_1_seconds']:.3g} / {equal['seconds'] / row['batch_1_seconds']:.3g}"
            many_text = f"{configured['seconds'] / many:.3g} / {equal['seconds'] / many:.3g}"
        row["equal_accuracy_timestep"] = None if equal is None else equal["timestep"]
        lines.append(f"| {row['model']} (h={row['history']}) | {row['l2']:.3g} | {row['batch_1_seconds']:.3g} | {many:.3g} | {eq_text} | "
                     f"{steps_text} | {one_text} | {many_text} |")
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        args.output.with_suffix(".json").write_text(json.dumps({"md": ladder, "simulators": simulators, "device": str(device)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
