"""Benchmark of the networks stage on a jammed network (1,000 nodes by default).

Prints the time of one sparse linear-response solve, the time of greedy pruning to nu = -0.5 with exact
rank-one updates, and the linear algebra that pruning used against what recomputing every candidate
removal from scratch would need. With ``--routes`` it prunes the same network both ways that
:class:`densim.elasticity.BondRemoval` holds ``H^+`` (dense, and a sparse factorisation plus rank-one terms) and
prints their ratio: where the factorised route wins sets ``densim.elasticity.FACTORISED_FROM``.
Run: ``python benchmarks/bench_networks.py [--nodes 1000] [--routes]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from densim.elasticity import POISSON_DEFINITIONS, linear_response
from densim.packing import contact_network, jammed_packing
from densim.tuning import prune_to_target


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
    parser.add_argument("--definition", choices=sorted(POISSON_DEFINITIONS), default="uniaxial_x")
    parser.add_argument("--routes", action="store_true", help="also prune with H^+ dense and factorised, and compare")
    args = parser.parse_args()

    start = time.perf_counter()
    packing = jammed_packing(args.nodes, 0.92, 1.4, np.random.default_rng(args.seed))
    network, _ = contact_network(packing)
    print(f"packing: {args.nodes} disks, FIRE {packing.steps} steps, {time.perf_counter() - start:.2f} s")
    print(f"network: {network.num_nodes} nodes, {network.num_bonds} bonds, Z = {network.mean_coordination():.3f}")

    solve = best_of(5, lambda: linear_response(network))
    print(f"one linear-response solve (sparse LU, 3 probes): {solve * 1e3:.1f} ms")

    start = time.perf_counter()
    result = prune_to_target(network, args.target, tolerance=0.005, definition=args.definition)
    prune = time.perf_counter() - start
    print(f"pruning to nu = {args.target:+.2f} ({args.definition}): reached {result.poisson:+.4f} after {result.steps} removals in {prune:.2f} s")
    print(f"  time per removal step (every allowed candidate evaluated): {prune / max(result.steps, 1) * 1e3:.1f} ms")
    print(f"  rank-one route: {result.factorisations} factorisations, {result.solves} right-hand-side solves")
    print(f"  per-bond recomputation: {result.candidates} factorisations, {3 * result.candidates} right-hand-side solves")
    print(f"  factorisations: {result.candidates / result.factorisations:.0f}x fewer with rank-one updates")
    print(f"  estimated per-bond recomputation time: {result.candidates * solve:.1f} s ({result.candidates * solve / prune:.0f}x the rank-one route)")
    if args.routes:
        times = {}
        for route, factorised_from in (("dense", network.num_nodes + 1), ("factorised", 0)):
            start = time.perf_counter()
            routed = prune_to_target(network, args.target, tolerance=0.005, definition=args.definition, factorised_from=factorised_from)
            times[route] = time.perf_counter() - start
            print(f"  H^+ {route:<10}: {times[route]:7.2f} s, {routed.steps} removals, nu = {routed.poisson:+.4f}, "
                  f"{routed.factorisations} factorisations, {routed.solves} solves")
        print(f"  factorised / dense time: {times['factorised'] / times['dense']:.2f}")


if __name__ == "__main__":
    main()
