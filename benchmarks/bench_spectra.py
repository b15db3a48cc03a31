"""Benchmark of the spectra stage: shift-invert Lanczos against dense diagonalisation on jammed networks.

For each node count, makes a jammed network and times the ``k`` smallest eigenpairs of its symmetric normalised
Laplacian by ``scipy.sparse.linalg.eigsh`` in shift-invert mode (what ``densim.spectra`` uses from
``dense_below`` nodes) and by dense ``numpy.linalg.eigh`` of the full matrix (what it uses below), and prints
their ratio and agreement. ``scipy.linalg.eigh`` restricted to the first k (LAPACK ``syevr``) is shown as the
best dense alternative. Run: ``python benchmarks/bench_spectra.py [--nodes 1000 5000] [--k 64]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.linalg

from densim.packing import contact_network, jammed_packing
from densim.spectra import laplacian_eigenpairs, normalized_laplacian


def best_of(repeats, func):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000], help="disks per packing (default 1000 5000)")
    parser.add_argument("--k", type=int, default=64, help="eigenpairs (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs of each solver (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"k = {args.k}, best of {args.repeats}, {os.cpu_count()} CPUs")

    rows = []
    for nodes in args.nodes:
        start = time.perf_counter()
        network, _ = contact_network(jammed_packing(nodes, 0.92, 1.4, np.random.default_rng(args.seed)))
        n, bonds = network.num_nodes, network.bonds
        print(f"\nN = {n} nodes, {network.num_bonds} bonds (packing of {nodes} disks in {time.perf_counter() - start:.1f} s)")

        sparse, (values, vectors, _) = best_of(args.repeats, lambda: laplacian_eigenpairs(n, bonds, args.k, dense_below=0))
        dense, (dense_values, dense_vectors, _) = best_of(args.repeats, lambda: laplacian_eigenpairs(n, bonds, args.k, dense_below=n + 1))
        laplacian = normalized_laplacian(n, bonds).toarray()
        subset, _ = best_of(args.repeats, lambda: scipy.linalg.eigh(laplacian, subset_by_index=[0, args.k - 1]))
        overlap = np.abs(np.sum(vectors * dense_vectors, axis=0))
        print(f"  eigsh, shift-invert sigma = -1e-3:    {sparse * 1e3:9.1f} ms")
        print(f"  numpy.linalg.eigh, full spectrum:     {dense * 1e3:9.1f} ms   ({dense / sparse:.1f}x eigsh)")
        print(f"  scipy.linalg.eigh, first k (syevr):   {subset * 1e3:9.1f} ms   ({subset / sparse:.1f}x eigsh)")
        print(f"  agreement: max |lambda difference| = {np.max(np.abs(values - dense_values)):.1e}, min |<v, v_dense>| = {overlap.min():.12f}")
        rows.append((n, sparse, dense, subset))

    print(f"\n{'N':>6} {'eigsh (s)':>10} {'eigh (s)':>10} {'eigh/eigsh':>11} {'syevr (s)':>10} {'syevr/eigsh':>12}")
    for n, sparse, dense, subset in rows:
        print(f"{n:>6} {sparse:>10.3f} {dense:>10.3f} {dense / sparse:>11.1f} {subset:>10.3f} {subset / sparse:>12.1f}")


if __name__ == "__main__":
    main()
