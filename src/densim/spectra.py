"""The spectra stage: the first k eigenpairs of the symmetric normalised Laplacian of a network's bond graph.

.. math::

    L = I - D^{-1/2} A D^{-1/2}, \\qquad L v_m = \\lambda_m v_m, \\qquad 0 = \\lambda_0 \\le \\lambda_1 \\le \\dots \\le 2,

with ``A`` the (unweighted, symmetric) adjacency of the bonds and ``D`` the diagonal of node degrees. An isolated
node has a zero row (Chung's convention), so the multiplicity of eigenvalue 0 is the number of connected components.

Eigenpairs depend only on the topology, so they are cached under a hash of it (:func:`topology_hash`): the cache
is content-addressed, an entry can never be stale, and networks that share their bonds (NODE-OPT moves nodes but
keeps the bonds of its packing) share one entry. Each entry also carries a hash of its arrays and is recomputed
when it is unreadable or does not match.

Eigenvectors are defined up to sign (and up to a basis within a degenerate eigenspace). A fixed sign convention
makes files reproducible: the entry of largest magnitude of every eigenvector is positive. Models must still be
invariant to the sign, since it flips between networks.

References
----------
F. R. K. Chung, *Spectral Graph Theory*, AMS (1997), ch. 1.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr

from densim.config import default
from densim.io import read_spectra_cache_entry, spectra_cache_path, spectra_content_hash, write_spectra

log = logging.getLogger(__name__)

#: Networks with fewer nodes are diagonalised densely (config ``spectra.dense_below``).
DENSE_BELOW = default("spectra.dense_below")
#: Shift of the shift-invert Lanczos iteration: just below the spectrum, so ``L - sigma I`` is positive definite.
SIGMA = default("spectra.sigma")
#: Version of the algorithm that fills a cache entry (solvers, sign convention); entries of another are recomputed.
SPECTRA_VERSION = 1
# Attributes of a cache entry that describe its topology and arrays (the rest is the provenance of its writer).
_TOPOLOGY_ATTRS = ("laplacian", "topology_hash", "k", "solver", "sigma", "spectra_version", "nodes", "bonds", "content_hash")
# Fixed start vector of the Lanczos iteration: ARPACK's own random start continues a process-wide stream, which
# would make the result depend on earlier calls. It is random, not constant, so that it has a component along
# every eigenvector even of a graph with symmetries.
_START_VECTOR_SEED = 20240601


def canonical_bonds(num_nodes: int, bonds: np.ndarray) -> np.ndarray:
    """The bonds as a canonical edge list: each pair once, ``i < j``, sorted lexicographically.

    Parameters
    ----------
    num_nodes : int
        Number of nodes N.
    bonds : array_like of int, shape (Nb, 2)
        Node indices of each bond, in any order and orientation, repeats allowed.

    Returns
    -------
    ndarray of int64, shape (Nb', 2)
        The distinct bonds, ``Nb' <= Nb``.

    Raises
    ------
    ValueError
        If a bond joins a node to itself or names a node outside ``0..N-1``.
    """
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if bonds.size and (bonds.min() < 0 or bonds.max() >= num_nodes):
        raise ValueError(f"bond node indices must lie in 0..{num_nodes - 1}")
    if np.any(bonds[:, 0] == bonds[:, 1]):
        raise ValueError("a bond joins a node to itself")
    return np.unique(np.sort(bonds, axis=1), axis=0)


def topology_hash(num_nodes: int, bonds: np.ndarray) -> str:
    """SHA-256 of a graph's topology: the number of nodes and the canonical bonds, as little-endian int64.

    The same for every order, orientation and repetition of the bonds; different as soon as a bond or a node
    is added or removed. Node labels matter: relabelling the nodes changes the hash.

    Parameters
    ----------
    num_nodes : int
    bonds : array_like of int, shape (Nb, 2)

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> topology_hash(3, [[0, 1], [1, 2]]) == topology_hash(3, [[2, 1], [1, 0]])
    True
    """
    canonical = canonical_bonds(num_nodes, bonds)
    digest = hashlib.sha256(np.int64(num_nodes).astype("<i8").tobytes())
    digest.update(canonical.astype("<i8").tobytes())
    return digest.hexdigest()


def normalized_laplacian(num_nodes: int, bonds: np.ndarray) -> sp.csr_matrix:
    """Symmetric normalised Laplacian ``L = I - D^-1/2 A D^-1/2`` of the unweighted bond graph.

    Parameters
    ----------
    num_nodes : int
        Number of nodes N.
    bonds : array_like of int, shape (Nb, 2)
        Node indices of each bond; order, orientation and repeats do not matter.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (N, N), float64
        ``L_ii = 1`` for nodes with bonds (0 for isolated nodes), ``L_ij = -1 / sqrt(d_i d_j)`` for bonded pairs.
    """
    edges = canonical_bonds(num_nodes, bonds)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    degree = np.bincount(rows, minlength=num_nodes).astype(np.float64)
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros(num_nodes), where=degree > 0)
    off_diagonal = sp.csr_matrix((-scale[rows] * scale[cols], (rows, cols)), shape=(num_nodes, num_nodes))
    return (sp.diags((degree > 0).astype(np.float64)) + off_diagonal).tocsr()


def spectral_solver(num_nodes: int, k: int, dense_below: int = DENSE_BELOW) -> str:
    """Which solver :func:`laplacian_eigenpairs` uses: ``"eigh"`` (dense) or ``"eigsh"`` (shift-invert Lanczos).

    Lanczos needs ``k < N``; below ``dense_below`` nodes a dense diagonalisation is faster anyway.
    """
    return "eigh" if num_nodes < dense_below or k >= num_nodes else "eigsh"


def _positive_largest_entry(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so that its entry of largest magnitude (the first such, on ties) is positive."""
    largest = vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])]
    return vectors * np.where(largest < 0, -1.0, 1.0)


def laplacian_eigenpairs(num_nodes: int, bonds: np.ndarray, k: int, dense_below: int = DENSE_BELOW, sigma: float = SIGMA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` smallest eigenpairs of the symmetric normalised Laplacian, in ascending order.

    Dense :func:`numpy.linalg.eigh` when ``N < dense_below`` or ``k >= N``; otherwise
    :func:`scipy.sparse.linalg.eigsh` in shift-invert mode about ``sigma`` (``which='LM'`` then selects the
    eigenvalues nearest ``sigma``, i.e. the smallest), from a fixed start vector so the result is reproducible.

    Parameters
    ----------
    num_nodes : int
        Number of nodes N (at least 1).
    bonds : array_like of int, shape (Nb, 2)
        Node indices of each bond.
    k : int
        Number of eigenpairs (at least 1). When ``k > N`` the last ``k - N`` are padding.
    dense_below : int, optional
        Node count from which the sparse solver is used (default 300).
    sigma : float, optional
        Shift of the shift-invert iteration; must be below 0 so that ``L - sigma I`` is invertible (default -1e-3).

    Returns
    -------
    eigenvalues : ndarray, shape (k,), float64
        Ascending over the valid modes; 0 for padding.
    eigenvectors : ndarray, shape (N, k), float64
        Orthonormal columns, the entry of largest magnitude of each positive; zero columns for padding.
    valid : ndarray of bool, shape (k,)
        False for padding modes (``m >= N``).

    Examples
    --------
    >>> values, vectors, valid = laplacian_eigenpairs(3, [[0, 1], [1, 2], [2, 0]], k=4)
    >>> np.round(values, 12).tolist(), valid.tolist()
    ([0.0, 1.5, 1.5, 0.0], [True, True, True, False])
    """
    if num_nodes < 1 or k < 1:
        raise ValueError(f"need at least one node and one mode, got N = {num_nodes}, k = {k}")
    if sigma >= 0:
        raise ValueError(f"sigma must be below the spectrum (negative), got {sigma}")
    laplacian = normalized_laplacian(num_nodes, bonds)
    found = min(k, num_nodes)
    if spectral_solver(num_nodes, k, dense_below) == "eigh":
        values, vectors = np.linalg.eigh(laplacian.toarray())
        values, vectors = values[:found], vectors[:, :found]
    else:
        start = np.random.default_rng(_START_VECTOR_SEED).uniform(-1.0, 1.0, num_nodes)
        # shift-invert through our own LU of L - sigma I: SuperLU with a symmetric ordering (minimum degree on L + L^T,
        # no pivoting off the diagonal, which this positive definite matrix never needs) fills half as much as
        # eigsh's own (COLAMD) and solves twice as fast (benchmarks/bench_scaling.py)
        shifted = (laplacian - sigma * sp.identity(num_nodes, format="csc")).tocsc()
        lu = spla.splu(shifted, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        inverse = spla.LinearOperator(shifted.shape, matvec=lu.solve, dtype=shifted.dtype)
        values, vectors = spla.eigsh(laplacian.tocsc(), k=found, sigma=sigma, which="LM", v0=start, OPinv=inverse)
        order = np.argsort(values, kind="stable")
        values, vectors = values[order], vectors[:, order]
    eigenvalues = np.zeros(k)
    eigenvectors = np.zeros((num_nodes, k))
    eigenvalues[:found] = values
    eigenvectors[:, :found] = _positive_largest_entry(vectors)
    return eigenvalues, eigenvectors, np.arange(k) < found


def _identity_attrs(num_nodes: int, bonds: np.ndarray, k: int, dense_below: int, sigma: float) -> dict:
    """The attributes that determine a spectra Dataset's arrays: a cache entry is reused only if they match."""
    solver = spectral_solver(num_nodes, k, dense_below)
    attrs = {"topology_hash": topology_hash(num_nodes, bonds), "k": int(k), "solver": solver, "spectra_version": SPECTRA_VERSION}
    if solver == "eigsh":
        attrs["sigma"] = float(sigma)
    return attrs


def topology_spectra(num_nodes: int, bonds: np.ndarray, k: int, dense_below: int = DENSE_BELOW, sigma: float = SIGMA) -> xr.Dataset:
    """Eigenpairs of a topology as a Dataset (what a cache entry holds), without network names or provenance.

    Returns
    -------
    xarray.Dataset
        Variables ``eigenvalues`` (mode), ``eigenvectors`` (node, mode), ``valid`` (mode); attributes
        ``topology_hash``, ``k``, ``solver`` (and ``sigma`` for ``eigsh``),
        ``spectra_version``, ``nodes``, ``bonds`` (distinct bonds) and ``content_hash``.
    """
    eigenvalues, eigenvectors, valid = laplacian_eigenpairs(num_nodes, bonds, k, dense_below, sigma)
    return xr.Dataset(
        {
            "eigenvalues": (("mode",), eigenvalues, {"description": "eigenvalues of L = I - D^-1/2 A D^-1/2, ascending over valid modes; 0 for padding"}),
            "eigenvectors": (("node", "mode"), eigenvectors, {"description": "orthonormal eigenvectors; entry of largest magnitude positive; zero for padding"}),
            "valid": (("mode",), valid, {"description": "false for padding modes (mode >= number of nodes)"}),
        },
        attrs={
            "laplacian": "symmetric normalised, unweighted bonds",
            **_identity_attrs(num_nodes, bonds, k, dense_below, sigma),
            "nodes": int(num_nodes),
            "bonds": int(canonical_bonds(num_nodes, bonds).shape[0]),
            "content_hash": spectra_content_hash(eigenvalues, eigenvectors, valid),
        },
    )


def _network_topology(network_ds: xr.Dataset) -> tuple[int, np.ndarray]:
    return network_ds.sizes["node"], network_ds["bonds"].values.astype(np.int64)


def _labelled(spectra: xr.Dataset, network_ds: xr.Dataset, provenance: dict) -> xr.Dataset:
    """A topology's spectra labelled with the network it belongs to and this run's provenance (only)."""
    topology = {key: spectra.attrs[key] for key in _TOPOLOGY_ATTRS if key in spectra.attrs}
    names = {key: network_ds.attrs[key] for key in ("dataset", "network", "generator") if key in network_ds.attrs}
    labelled = spectra.copy()
    labelled.attrs = {**topology, **names, **provenance}
    return labelled


def spectra_dataset(network_ds: xr.Dataset, k: int, dense_below: int = DENSE_BELOW, sigma: float = SIGMA, provenance: dict | None = None) -> xr.Dataset:
    """The spectra file of one network, computed without the cache.

    Parameters
    ----------
    network_ds : xarray.Dataset
        A network file's Dataset (``densim.io.read_network(path)[1]``): dimension ``node``, variable ``bonds``.
    k, dense_below, sigma
        As in :func:`laplacian_eigenpairs`.
    provenance : dict, optional
        Provenance attributes (``densim.provenance.provenance_attrs``) of this run.

    Returns
    -------
    xarray.Dataset
        As :func:`topology_spectra`, plus the network's ``dataset``, ``network`` and ``generator`` attributes
        and ``provenance``.
    """
    return _labelled(topology_spectra(*_network_topology(network_ds), k, dense_below, sigma), network_ds, provenance or {})


def cached_spectra(
    network_ds: xr.Dataset,
    k: int,
    cache_dir: str | Path,
    dense_below: int = DENSE_BELOW,
    sigma: float = SIGMA,
    provenance: dict | None = None,
) -> xr.Dataset:
    """The spectra file of one network, reusing the cache entry of its topology when there is a good one.

    Looks for ``cache_dir/{topology_hash}_k{k}.nc``. A readable entry made for the same topology, ``k``, solver
    (and ``sigma``) and algorithm version, whose arrays match its content hash, is reused; anything else is
    recomputed and the entry (re)written atomically. Concurrent jobs computing the same entry each write a complete
    file, so a reader never sees a partial one.

    Parameters
    ----------
    network_ds : xarray.Dataset
        A network file's Dataset (``densim.io.read_network(path)[1]``).
    k, dense_below, sigma
        As in :func:`laplacian_eigenpairs`.
    cache_dir : path
        Folder of the cache (created if needed).
    provenance : dict, optional
        Provenance attributes of this run; also written into a new cache entry.

    Returns
    -------
    xarray.Dataset
        As :func:`spectra_dataset`; the arrays are identical whether the cache was used or not.
    """
    num_nodes, bonds = _network_topology(network_ds)
    provenance = provenance or {}
    expected = _identity_attrs(num_nodes, bonds, k, dense_below, sigma)
    path = spectra_cache_path(cache_dir, expected["topology_hash"], k)
    entry = read_spectra_cache_entry(path, expected, num_nodes)
    if entry is None:
        entry = topology_spectra(num_nodes, bonds, k, dense_below, sigma)
        write_spectra(entry.assign_attrs(**provenance), path)
        log.info("spectra cache: wrote %s (%s, N = %d, k = %d)", path, expected["solver"], num_nodes, k)
    else:
        log.info("spectra cache: reused %s", path)
    return _labelled(entry, network_ds, provenance).assign_attrs(cache_entry=path.name)
