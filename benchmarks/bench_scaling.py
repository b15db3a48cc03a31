"""Scaling of every data stage with network size: seconds, peak memory and the fitted growth exponent.

For each node count (default 1,000, 10,000 and 100,000 disks) this runs, each in a fresh Python process so that
its peak resident memory is its own:

- ``jamming``: a FIRE-minimised packing and its contact network (:mod:`densim.packing`), the input of the rest;
- ``moduli``: linear-response elastic moduli (:func:`densim.elasticity.linear_response`);
- ``spectra``: the 64 smallest Laplacian eigenpairs (:func:`densim.spectra.laplacian_eigenpairs`);
- ``bond_pru_opt``: greedy pruning to nu = -0.5 (:func:`densim.tuning.prune_to_target`);
- ``noi_pru``: noise and random pruning into the interval around nu = 0 of the default NOI-PRU dataset (its middle
  network; :func:`densim.tuning.noise_and_prune`, its first random path. On large networks random removals average
  out, and a path from nu of about +0.47 ends at the coordination floor before it reaches -0.5);
- ``node_opt``: ten gradient steps of NODE-OPT's differentiable route (:func:`densim.tuning.optimise_node_positions`
  stopped after 10 steps: a whole run takes hundreds to thousands of them);
- ``compression``: the default config's LAMMPS compression (:func:`densim.trajectories.simulate`, the
  ``trajectories`` section of ``config.yaml``: 213 frames of 10 steps);
- ``zero_stress``: the zero-stress Poisson ratio of every frame of that compression
  (:func:`densim.observables.poisson_ratio_from_positions`).

Generation settings are the defaults of the config schema (packing fraction 0.92, diameter ratio 1.4, stiffness
1/l0). Each run has a time budget (``--budget`` seconds): a stage that exceeds it is stopped, reported as such, and
not run at the larger sizes. Per stage the growth exponent is the least-squares slope of log seconds against log
nodes over the sizes that finished. Memory is the process's peak resident set (``ru_maxrss``) and, in brackets, how
much the stage added to it after its inputs were loaded (``VmHWM`` of ``/proc/self/status``).

Run: ``python benchmarks/bench_scaling.py [--nodes 1000 10000 100000] [--stages jamming moduli ...] [--budget 600]
[--workdir DIR] [--tsv FILE]``. ``--workdir`` keeps the networks and frames between runs (they are reused).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_NU = -0.5
NODE_OPT_STEPS = 10
#: stage -> the stage whose output it reads (jamming's network, compression's frames)
NEEDS = {"jamming": None, "moduli": "jamming", "spectra": "jamming", "bond_pru_opt": "jamming", "noi_pru": "jamming",
         "node_opt": "jamming", "compression": "jamming", "zero_stress": "compression"}
STAGES = list(NEEDS)


def _peak_mib() -> float:
    """This process's peak resident memory: ``VmHWM`` (Linux keeps ``ru_maxrss`` across ``exec``, so a child would
    report its parent's peak), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _dataset(generator: str):
    """The default config's dataset of ``generator`` (its nu range and tuning settings), one network."""
    import yaml

    from densim.networks import DatasetConfig

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    name = next(name for name, section in config["datasets"].items() if section.get("generator") == generator)
    return DatasetConfig.from_dict(name, config["datasets"][name])


def _network_path(workdir: Path, nodes: int) -> Path:
    return workdir / f"network_{nodes}.npz"


def _frames_path(workdir: Path, nodes: int) -> Path:
    return workdir / f"frames_{nodes}.npz"


#: stage -> the file it leaves for the stages that read it
OUTPUTS = {"jamming": _network_path, "compression": _frames_path}


def _load_network(workdir: Path, nodes: int):
    from densim.springs import SpringNetwork

    with np.load(_network_path(workdir, nodes)) as f:
        return SpringNetwork(f["positions"], f["box"], f["bonds"], f["rest_lengths"], f["stiffness"])


def tiled(network, copies: int):
    """The periodic network ``network`` repeated ``copies`` x ``copies`` times in a box that many times larger.

    Node ``a`` of tile ``t`` bonds to the copy of its partner ``b`` in tile ``t - n`` (mod ``copies``), ``n`` the
    bond's periodic image offset, so every bond keeps its vector, rest length and stiffness: the tiling is stress free,
    as rigid as the original and has its moduli (a check that the benchmark prints).
    """
    from densim.springs import SpringNetwork, periodic_images

    n, bonds = network.num_nodes, network.bonds
    images = periodic_images(network.positions[bonds[:, 1]] - network.positions[bonds[:, 0]], network.box).astype(int)
    tiles = np.array([(i, j) for i in range(copies) for j in range(copies)])
    positions = np.concatenate([network.positions + t * network.box for t in tiles])
    ends = []
    for index, t in enumerate(tiles):
        partner = (t[None, :] - images) % copies
        ends.append(np.stack([index * n + bonds[:, 0], (partner[:, 0] * copies + partner[:, 1]) * n + bonds[:, 1]], axis=1))
    ends = np.sort(np.concatenate(ends), axis=1)
    repeat = lambda values: np.tile(values, copies * copies)  # noqa: E731
    return SpringNetwork(positions, network.box * copies, ends, repeat(network.rest_lengths), repeat(network.stiffness))


def run_stage(stage: str, nodes: int, workdir: Path) -> dict:
    """Run one stage at one size in this process; returns seconds, memory and what it did."""
    network = None if stage == "jamming" else _load_network(workdir, nodes)
    if stage == "zero_stress":
        with np.load(_frames_path(workdir, nodes)) as f:
            positions, box = f["positions"], f["box"]
    # the stage's modules load before the clock starts (torch and its compiler, which Adam's first step imports, for
    # NODE-OPT): start-up is not what grows with the network
    for module in ("densim.elasticity", "densim.observables", "densim.packing", "densim.protocols", "densim.spectra",
                   "densim.trajectories", "densim.tuning", *(["torch._dynamo"] if stage == "node_opt" else [])):
        importlib.import_module(module)
    baseline = _peak_mib()
    start = time.perf_counter()
    note = ""
    if stage == "jamming":
        from densim.packing import contact_network, jammed_packing

        packing = jammed_packing(nodes, 0.92, 1.4, np.random.default_rng(0))
        network, _ = contact_network(packing)
        seconds = time.perf_counter() - start
        np.savez(_network_path(workdir, nodes), positions=network.positions, box=network.box, bonds=network.bonds,
                 rest_lengths=network.rest_lengths, stiffness=network.stiffness)
        note = f"{packing.steps} FIRE steps, Z = {network.mean_coordination():.2f}"
    elif stage == "moduli":
        from densim.elasticity import linear_response

        moduli = linear_response(network)
        note = f"nu = {moduli.poisson_ratio('uniaxial_x'):+.3f}"
    elif stage == "spectra":
        from densim.spectra import laplacian_eigenpairs

        values, _, _ = laplacian_eigenpairs(network.num_nodes, network.bonds, 64)
        note = f"k = 64, lambda_64 = {values[-1]:.2e}"
    elif stage == "bond_pru_opt":
        from densim.tuning import prune_to_target

        config = _dataset("bond_pru_opt")
        result = prune_to_target(network, TARGET_NU, config.tolerance, config.poisson_ratio)
        note = f"nu = {result.poisson:+.3f} after {result.steps} removals"
    elif stage == "noi_pru":
        from densim.tuning import MissedPath, noise_and_prune

        config = _dataset("noi_pru")
        interval = config.acceptance_interval(config.networks // 2)
        result = noise_and_prune(network, interval, np.random.default_rng(0), config.noi_pru.noise, config.stiffness,
                                 config.poisson_ratio, config.noi_pru.min_coordination, config.noi_pru.min_length_ratio)
        note = (f"this random path missed [{interval[0]:+.3f}, {interval[1]:+.3f}]: nu went through [{result.nu_min:+.3f}, "
                f"{result.nu_max:+.3f}], ended by {result.reason}" if isinstance(result, MissedPath)
                else f"nu = {result.poisson:+.3f} after {result.steps} removals")
    elif stage == "node_opt":
        from densim.tuning import optimise_node_positions

        config = _dataset("node_opt")
        o = config.node_opt
        result = optimise_node_positions(network, TARGET_NU, config.tolerance, config.stiffness, config.poisson_ratio,
                                         o.learning_rate, NODE_OPT_STEPS, o.min_length_ratio, o.min_angle_degrees)
        note = f"{result.steps} gradient steps"
    elif stage == "compression":
        import yaml

        from densim.protocols import md_settings
        from densim.trajectories import simulate

        settings = md_settings(yaml.safe_load((ROOT / "config.yaml").read_text())["trajectories"])
        run = simulate(network, settings, f"scaling/{nodes}")
        seconds = time.perf_counter() - start
        np.savez(_frames_path(workdir, nodes), positions=run.positions, box=run.box)
        note = f"{run.positions.shape[0]} frames of {settings.steps_per_frame} steps"
    elif stage == "zero_stress":
        from densim.observables import poisson_ratio_from_positions

        nu = poisson_ratio_from_positions(positions, box[:, 0], box[0], network.bonds, network.rest_lengths, network.stiffness)
        note = f"{len(nu)} frames, last nu = {nu[-1]:+.3f}"
    else:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    if stage not in ("jamming", "compression"):
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib": _peak_mib(), "stage_mib": _peak_mib() - baseline, "nodes": network.num_nodes, "note": note}


def growth_exponent(nodes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log seconds against log nodes (NaN below two sizes)."""
    if len(nodes) < 2:
        return math.nan
    return float(np.polyfit(np.log(nodes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 10000, 100000], help="disks per packing (default 1000 10000 100000)")
    parser.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES, metavar="STAGE", help=f"stages to run (default all: {' '.join(STAGES)})")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds one stage may take at one size before it is stopped (default 600)")
    parser.add_argument("--workdir", type=Path, help="keep networks and frames here, reusing those already made (default: a temporary folder)")
    parser.add_argument("--tsv", type=Path, help="also write the table here")
    parser.add_argument("--tile-from", type=int, metavar="NODES",
                        help="make each larger network by tiling the jammed network of NODES disks k x k (k = round(sqrt(nodes / NODES))) "
                             "instead of jamming it: for sizes whose jamming exceeds the budget")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "NODES", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, nodes, workdir = args.child
        print(json.dumps(run_stage(stage, int(nodes), Path(workdir))))
        return
    with tempfile.TemporaryDirectory(prefix="densim-scaling-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        measure(args, workdir)


def measure(args, workdir: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))}
    wanted = [s for s in STAGES if s in args.stages or any(NEEDS.get(t) == s for t in args.stages)]
    print(f"{os.cpu_count()} CPUs, budget {args.budget:.0f} s per stage and size, stages: {' '.join(wanted)}")
    rows, stopped, tiles = [], set(), set()
    header = f"{'stage':<13} {'nodes':>7} {'seconds':>9} {'peak MiB':>9} {'(stage)':>9}  note"
    print(header)
    for nodes in sorted(args.nodes):
        if args.tile_from and nodes > args.tile_from and not _network_path(workdir, nodes).exists():
            copies = round(math.sqrt(nodes / args.tile_from))
            base = _load_network(workdir, args.tile_from)
            big = tiled(base, copies)
            np.savez(_network_path(workdir, nodes), positions=big.positions, box=big.box, bonds=big.bonds,
                     rest_lengths=big.rest_lengths, stiffness=big.stiffness)
            tiles.add(nodes)
            from densim.elasticity import linear_response

            print(f"  ({nodes}: the {base.num_nodes}-node jammed network tiled {copies} x {copies}: {big.num_nodes} nodes, "
                  f"{big.num_bonds} bonds; nu = {linear_response(big).poisson:+.9f} against {linear_response(base).poisson:+.9f})")
        for stage in wanted:
            need = NEEDS[stage]
            reusable = OUTPUTS.get(stage)
            if reusable and reusable(workdir, nodes).exists() and stage not in args.stages:
                continue  # an input made by an earlier run, and not asked for itself
            if stage == "jamming" and nodes in tiles:
                continue
            if stage in stopped or (need and not OUTPUTS[need](workdir, nodes).exists()):
                row = {"stage": stage, "nodes": nodes, "seconds": math.nan, "peak_mib": math.nan, "stage_mib": math.nan,
                       "note": "not run: over budget at a smaller size" if stage in stopped else f"not run: no {need} output"}
            else:
                try:
                    out = subprocess.run([sys.executable, __file__, "--child", stage, str(nodes), str(workdir)], env=env,
                                         capture_output=True, text=True, timeout=args.budget)
                except subprocess.TimeoutExpired:
                    stopped.add(stage)
                    row = {"stage": stage, "nodes": nodes, "seconds": math.inf, "peak_mib": math.nan, "stage_mib": math.nan,
                           "note": f"stopped after {args.budget:.0f} s"}
                else:
                    if out.returncode != 0:
                        raise SystemExit(f"{stage} at {nodes} nodes failed:\n{out.stderr[-3000:]}")
                    row = {"stage": stage, **json.loads(out.stdout.strip().splitlines()[-1])}
            rows.append(row)
            if stage in args.stages:
                print(f"{row['stage']:<13} {row['nodes']:>7} {row['seconds']:>9.3g} {row['peak_mib']:>9.0f} {row['stage_mib']:>9.0f}  {row['note']}", flush=True)
    print("\ngrowth exponent (seconds ~ nodes^p, over the sizes that finished):")
    for stage in args.stages:
        done = [r for r in rows if r["stage"] == stage and math.isfinite(r["seconds"])]
        p = growth_exponent([r["nodes"] for r in done], [r["seconds"] for r in done])
        print(f"  {stage:<13} p = {p:.2f}  ({len(done)} sizes)")
    if args.tsv:
        keys = ["stage", "nodes", "seconds", "peak_mib", "stage_mib", "note"]
        args.tsv.write_text("\n".join(["\t".join(keys)] + ["\t".join(str(r[k]) for k in keys) for r in rows if r["stage"] in args.stages]) + "\n")


if __name__ == "__main__":
    main()
