"""Benchmark of the networks stage on a 1,000-node jammed network.

Prints the time of one sparse linear-response solve, the time of greedy pruning to nu = -0.5 with exact
rank-one updates, and the linear algebra that pruning used against what recomputing every candidate
removal from scratch would need. Run: ``python benchmarks/bench_networks.py [--nodes 1000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from densim.elasticity import BondRemoval, linear_response, poisson_ratio
from densim.packing import contact_network, jammed_packing


def best_of(repeats, func):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--target", type=float, default=-0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    packing = jammed_packing(args.nodes, 0.92, 1.4, np.random.default_rng(args.seed))
    network, _ = contact_network(packing)
    print(f"packing: {args.nodes} disks, FIRE {packing.steps} steps, {time.perf_counter() - start:.2f} s")
    print(f"network: {network.num_nodes} nodes, {network.num_bonds} bonds, Z = {network.mean_coordination():.3f}")

    solve = best_of(5, lambda: linear_response(network))
    print(f"one linear-response solve (sparse LU, 3 probes): {solve * 1e3:.1f} ms")

    start = time.perf_counter()
    state = BondRemoval(network)
    nu = state.moduli.poisson
    candidates = 0
    while abs(nu - args.target) > 0.005:
        bulk, shear, allowed = state.removal_effects()
        candidates += int(allowed.sum())
        miss = np.abs(poisson_ratio(bulk, shear) - args.target)
        best = int(np.nanargmin(miss))
        if not allowed.any() or miss[best] >= abs(nu - args.target):
            break
        state.remove(best)
        nu = state.moduli.poisson
    prune = time.perf_counter() - start
    print(f"pruning to nu = {args.target:+.2f}: reached {nu:+.4f} after {len(state.removed)} removals in {prune:.2f} s")
    print(f"  time per removal step (all {network.num_bonds} candidates evaluated): {prune / max(len(state.removed), 1) * 1e3:.1f} ms")
    print(f"  rank-one route: {state.factorisations} factorisations, {state.solves} right-hand-side solves")
    print(f"  per-bond recomputation: {candidates} factorisations, {3 * candidates} right-hand-side solves")
    print(f"  ratio of factorisations: {candidates / state.factorisations:.0f}x fewer")
    print(f"  estimated per-bond recomputation time: {candidates * solve:.1f} s ({candidates * solve / prune:.0f}x the rank-one route)")


if __name__ == "__main__":
    main()
