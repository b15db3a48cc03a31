"""The spectra stage: Laplacian eigenpairs against references and invariants, the topology hash and the cache."""

import numpy as np
import pytest

import densim.spectra
from densim.io import network_to_dataset, read_dataset, read_spectra, spectra_cache_path, write_dataset, write_network, write_spectra
from densim.springs import stress_free_network
from densim.packing import contact_network, jammed_packing
from densim.provenance import provenance_attrs
from densim.spectra import (
    cached_spectra,
    laplacian_eigenpairs,
    normalized_laplacian,
    spectra_dataset,
    spectral_solver,
    topology_hash,
)

DEGENERACY = 1e-8


def reference_laplacian(num_nodes, bonds):
    """L = I - D^-1/2 A D^-1/2 written out densely, for graphs without isolated nodes or repeated bonds."""
    adjacency = np.zeros((num_nodes, num_nodes))
    for i, j in bonds:
        adjacency[i, j] = adjacency[j, i] = 1.0
    scale = 1.0 / np.sqrt(adjacency.sum(axis=1))
    return np.eye(num_nodes) - scale[:, None] * adjacency * scale[None, :]


def cycle(n):
    return n, np.array([(i, (i + 1) % n) for i in range(n)])


def path(n):
    return n, np.array([(i, i + 1) for i in range(n - 1)])


def star(n):
    return n, np.array([(0, i) for i in range(1, n)])


def complete(n):
    return n, np.array([(i, j) for i in range(n) for j in range(i + 1, n)])


def petersen():
    outer = [(i, (i + 1) % 5) for i in range(5)]
    spokes = [(i, i + 5) for i in range(5)]
    inner = [(5 + i, 5 + (i + 2) % 5) for i in range(5)]
    return 10, np.array(outer + spokes + inner)


SMALL_GRAPHS = {"path7": path(7), "cycle8": cycle(8), "star6": star(6), "complete5": complete(5), "petersen": petersen()}


def assert_same_eigenspaces(values, vectors, ref_values, ref_vectors, atol=1e-10):
    """Equal eigenvalues, and equal eigenvectors up to sign or, in a degenerate eigenspace, up to a rotation.

    Compares the projector onto each group of (numerically) equal eigenvalues; a group cut by the last mode is
    compared only if the reference shows it is complete.
    """
    k = len(values)
    np.testing.assert_allclose(values, ref_values[:k], rtol=0, atol=atol)
    start = 0
    while start < k:
        stop = start + 1
        while stop < len(ref_values) and ref_values[stop] - ref_values[stop - 1] < DEGENERACY:
            stop += 1
        if stop > k:
            break
        projector = vectors[:, start:stop] @ vectors[:, start:stop].T
        ref_projector = ref_vectors[:, start:stop] @ ref_vectors[:, start:stop].T
        np.testing.assert_allclose(projector, ref_projector, rtol=0, atol=1e-8, err_msg=f"modes {start}..{stop - 1}")
        start = stop


@pytest.fixture(scope="module")
def jammed400():
    network, _ = contact_network(jammed_packing(400, 0.92, 1.4, np.random.default_rng(0)))
    return network


def network_ds(network, name="0000"):
    return network_to_dataset(network, {}, {"dataset": "test", "network": name, "generator": "bond_pru_opt"})


@pytest.mark.parametrize("name", SMALL_GRAPHS)
def test_laplacian_matches_its_definition(name):
    num_nodes, bonds = SMALL_GRAPHS[name]
    np.testing.assert_allclose(normalized_laplacian(num_nodes, bonds).toarray(), reference_laplacian(num_nodes, bonds), rtol=0, atol=1e-15)


@pytest.mark.parametrize("dense_below", [300, 1], ids=["eigh", "eigsh"])
@pytest.mark.parametrize("name", SMALL_GRAPHS)
def test_eigenpairs_match_dense_reference_on_small_graphs(name, dense_below):
    num_nodes, bonds = SMALL_GRAPHS[name]
    ref_values, ref_vectors = np.linalg.eigh(reference_laplacian(num_nodes, bonds))
    k = num_nodes - 1
    values, vectors, valid = laplacian_eigenpairs(num_nodes, bonds, k, dense_below=dense_below)
    assert spectral_solver(num_nodes, k, dense_below) == ("eigh" if dense_below == 300 else "eigsh")
    assert valid.all() and values.dtype == vectors.dtype == np.float64
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(k), rtol=0, atol=1e-12)
    assert_same_eigenspaces(values, vectors, ref_values, ref_vectors)


def test_cycle_spectrum_is_analytic():
    """C_n: lambda = 1 - cos(2 pi j / n), doubly degenerate, with lambda = 2 because an even cycle is bipartite."""
    num_nodes, bonds = cycle(12)
    values, _, _ = laplacian_eigenpairs(num_nodes, bonds, 12)
    np.testing.assert_allclose(values, np.sort(1 - np.cos(2 * np.pi * np.arange(12) / 12)), rtol=0, atol=1e-12)


def test_spectrum_lies_in_0_2_with_sqrt_degree_null_vector(jammed):
    values, vectors, _ = laplacian_eigenpairs(jammed.num_nodes, jammed.bonds, jammed.num_nodes)
    assert np.all(values >= -1e-12) and np.all(values <= 2 + 1e-12)
    assert abs(values[0]) < 1e-12 and values[1] > 1e-6  # connected: a single zero mode
    expected = np.sqrt(jammed.degrees()) / np.linalg.norm(np.sqrt(jammed.degrees()))
    np.testing.assert_allclose(vectors[:, 0], expected, rtol=0, atol=1e-12)  # positive by the sign convention


def test_sparse_solver_matches_dense_on_a_jammed_network(jammed400):
    n, bonds, k = jammed400.num_nodes, jammed400.bonds, 16
    assert spectral_solver(n, k, 300) == "eigsh"
    values, vectors, _ = laplacian_eigenpairs(n, bonds, k)
    dense_values, dense_vectors, _ = laplacian_eigenpairs(n, bonds, k, dense_below=n + 1)
    np.testing.assert_allclose(values, dense_values, rtol=0, atol=1e-10)
    assert np.min(np.diff(dense_values)) > DEGENERACY  # a disordered network: no degeneracy
    np.testing.assert_allclose(np.abs(np.sum(vectors * dense_vectors, axis=0)), 1.0, rtol=0, atol=1e-10)
    # the sign convention makes the two solvers agree without flips
    np.testing.assert_allclose(vectors, dense_vectors, rtol=0, atol=1e-8)


def test_sparse_solver_finds_degenerate_modes_of_disconnected_copies(jammed):
    """Two copies of a network: every eigenvalue is doubly degenerate, 0 included (two components)."""
    n = jammed.num_nodes
    bonds = np.concatenate([jammed.bonds, jammed.bonds + n])
    values, vectors, _ = laplacian_eigenpairs(2 * n, bonds, 12, dense_below=1)
    ref_values, ref_vectors = np.linalg.eigh(normalized_laplacian(2 * n, bonds).toarray())
    assert abs(values[1]) < 1e-12
    assert_same_eigenspaces(values, vectors, ref_values, ref_vectors)


def test_eigenpairs_are_reproducible_bit_for_bit(jammed400):
    first = laplacian_eigenpairs(jammed400.num_nodes, jammed400.bonds, 8)
    laplacian_eigenpairs(jammed400.num_nodes, jammed400.bonds[::-1], 4)  # a call in between does not matter
    second = laplacian_eigenpairs(jammed400.num_nodes, jammed400.bonds, 8)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_padding_when_k_exceeds_the_node_count():
    values, vectors, valid = laplacian_eigenpairs(3, [(0, 1), (1, 2), (2, 0)], 5, dense_below=1)
    np.testing.assert_allclose(values, [0.0, 1.5, 1.5, 0.0, 0.0], atol=1e-14)
    assert valid.tolist() == [True, True, True, False, False]
    assert vectors.shape == (3, 5) and not vectors[:, 3:].any()
    assert spectral_solver(3, 5, dense_below=1) == "eigh"  # Lanczos needs k < N


def test_isolated_node_is_a_zero_mode():
    values, vectors, _ = laplacian_eigenpairs(4, [(0, 1), (1, 2), (2, 0)], 4)
    np.testing.assert_allclose(values, [0.0, 0.0, 1.5, 1.5], atol=1e-14)
    assert abs(vectors[3, :2]).max() > 0.99  # one zero mode sits on the isolated node


def test_invalid_arguments():
    with pytest.raises(ValueError, match="itself"):
        normalized_laplacian(3, [(0, 0)])
    with pytest.raises(ValueError, match="0..2"):
        topology_hash(3, [(0, 3)])
    with pytest.raises(ValueError, match="sigma"):
        laplacian_eigenpairs(3, [(0, 1)], 1, sigma=0.0)


def test_topology_hash_depends_on_the_graph_only():
    num_nodes, bonds = petersen()
    reference = topology_hash(num_nodes, bonds)
    rng = np.random.default_rng(1)
    shuffled = bonds[rng.permutation(len(bonds))]
    flipped = np.where(rng.random(len(bonds))[:, None] < 0.5, shuffled[:, ::-1], shuffled)
    assert topology_hash(num_nodes, flipped) == reference
    assert topology_hash(num_nodes, np.concatenate([flipped, bonds[:3]])) == reference  # repeats
    assert topology_hash(num_nodes, flipped.astype(np.int32)) == reference
    assert topology_hash(num_nodes, bonds[1:]) != reference
    assert topology_hash(num_nodes + 1, bonds) != reference
    assert len(reference) == 64


def test_node_permutation_permutes_eigenvectors(jammed):
    """Relabelling node old -> new permutes eigenvector entries the same way, up to sign; eigenvalues stay."""
    n = jammed.num_nodes
    order = np.random.default_rng(3).permutation(n)  # new node i is old node order[i]
    new_label = np.argsort(order)
    for dense_below in (300, 1):
        values, vectors, _ = laplacian_eigenpairs(n, jammed.bonds, 10, dense_below=dense_below)
        p_values, p_vectors, _ = laplacian_eigenpairs(n, new_label[jammed.bonds], 10, dense_below=dense_below)
        np.testing.assert_allclose(p_values, values, rtol=0, atol=1e-12)
        signs = np.sign(np.sum(p_vectors * vectors[order], axis=0))
        np.testing.assert_allclose(p_vectors, vectors[order] * signs, rtol=0, atol=1e-10)


def test_spectra_file_layout(jammed, tmp_path):
    attrs = provenance_attrs({"spectra": {"k": 8}})
    ds = spectra_dataset(network_ds(jammed), 8, provenance=attrs)
    written = read_spectra(write_spectra(ds, tmp_path / "s.nc"))
    assert dict(written.sizes) == {"node": jammed.num_nodes, "mode": 8}
    assert written["eigenvectors"].dims == ("node", "mode")
    assert written["eigenvalues"].dtype == written["eigenvectors"].dtype == np.float64
    assert written["valid"].dtype == bool and written["valid"].all()
    assert written.attrs["topology_hash"] == topology_hash(jammed.num_nodes, jammed.bonds)
    assert written.attrs["k"] == 8 and written.attrs["solver"] == "eigh" and written.attrs["bonds"] == jammed.num_bonds
    assert (written.attrs["dataset"], written.attrs["network"]) == ("test", "0000")
    for key in ("densim_version", "git_commit", "config_hash", "input_hashes", "command", "created", "package_versions"):
        assert written.attrs[key] == attrs[key]


@pytest.fixture
def counted_solves(monkeypatch):
    calls = []
    solve = densim.spectra.laplacian_eigenpairs

    def counting(*args, **kwargs):
        calls.append(args[0])
        return solve(*args, **kwargs)

    monkeypatch.setattr(densim.spectra, "laplacian_eigenpairs", counting)
    return calls


def assert_same_arrays(a, b):
    for name in ("eigenvalues", "eigenvectors", "valid"):
        assert np.array_equal(a[name].values, b[name].values), name


def test_cache_is_reused_across_networks_of_one_topology(jammed, tmp_path, counted_solves):
    first = cached_spectra(network_ds(jammed, "0000"), 8, tmp_path)
    entry = spectra_cache_path(tmp_path, topology_hash(jammed.num_nodes, jammed.bonds), 8)
    assert entry.is_file() and len(counted_solves) == 1
    stamp = entry.stat().st_mtime_ns
    # a network tuned by moving nodes keeps its bonds: same topology, same entry
    moved = stress_free_network(jammed.positions + 0.01, jammed.box, jammed.bonds[::-1], "inverse_length")
    second = cached_spectra(network_ds(moved, "0001"), 8, tmp_path)
    assert len(counted_solves) == 1 and entry.stat().st_mtime_ns == stamp
    assert_same_arrays(first, second)
    assert (first.attrs["network"], second.attrs["network"]) == ("0000", "0001")
    assert second.attrs["cache_entry"] == entry.name
    # another k, or a pruned topology, is another entry
    cached_spectra(network_ds(jammed), 9, tmp_path)
    cached_spectra(network_ds(jammed.without_bonds(np.arange(jammed.num_bonds) != 0)), 8, tmp_path)
    assert len(counted_solves) == 3 and len(list(tmp_path.glob("*.nc"))) == 3
    assert_same_arrays(first, spectra_dataset(network_ds(jammed), 8))  # the cache changes nothing


@pytest.mark.parametrize("damage", ["garbage", "truncated", "altered_values", "other_kind"])
def test_damaged_cache_entry_is_recomputed(jammed, tmp_path, counted_solves, damage):
    good = cached_spectra(network_ds(jammed), 8, tmp_path)
    entry = spectra_cache_path(tmp_path, topology_hash(jammed.num_nodes, jammed.bonds), 8)
    if damage == "garbage":
        entry.write_bytes(b"not a netCDF file")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "altered_values":  # a readable file whose arrays no longer match its content hash
        altered = read_dataset(entry, "spectra")
        altered["eigenvalues"][3] += 1e-9
        write_dataset(altered, entry)
    else:
        write_dataset(read_dataset(entry, "spectra").assign_attrs(densim_kind="network"), entry)
    again = cached_spectra(network_ds(jammed), 8, tmp_path)
    assert len(counted_solves) == 2
    assert_same_arrays(good, again)
    assert_same_arrays(good, read_dataset(entry, "spectra"))  # the entry was rewritten whole
    cached_spectra(network_ds(jammed), 8, tmp_path)
    assert len(counted_solves) == 2


def test_cache_entry_of_another_solver_is_not_reused(jammed400, tmp_path, counted_solves):
    ds = network_ds(jammed400)
    dense = cached_spectra(ds, 8, tmp_path, dense_below=1000)
    sparse = cached_spectra(ds, 8, tmp_path, dense_below=300)
    assert len(counted_solves) == 2 and (dense.attrs["solver"], sparse.attrs["solver"]) == ("eigh", "eigsh")
    np.testing.assert_allclose(sparse["eigenvalues"], dense["eigenvalues"], rtol=0, atol=1e-10)


def test_command_line(jammed, tmp_path):
    from densim import cli

    network = write_network(network_ds(jammed), tmp_path / "network.nc")
    out = tmp_path / "spectra.nc"
    cli.main(["spectra", str(network), "--k", "6", "--cache-dir", str(tmp_path / "cache"), "--output", str(out)])
    ds = read_dataset(out, "spectra")
    assert ds.attrs["k"] == 6 and ds.attrs["network"] == "0000" and str(network) in ds.attrs["input_hashes"]
    assert len(list((tmp_path / "cache").glob("*_k6.nc"))) == 1


def test_parallel_jobs_share_the_cache_safely(jammed400, tmp_path):
    """Jobs that compute the same entry at once each write a whole file: every output and the entry are good."""
    import subprocess
    import sys

    network = write_network(network_ds(jammed400), tmp_path / "network.nc")
    command = [sys.executable, "-m", "densim.cli", "spectra", str(network), "--k", "16", "--dense-below", "100",
               "--cache-dir", str(tmp_path / "cache")]
    jobs = [subprocess.Popen([*command, "--output", str(tmp_path / f"out{i}.nc")], stderr=subprocess.PIPE, text=True) for i in range(4)]
    assert all(job.wait(timeout=300) == 0 for job in jobs), [job.stderr.read()[-2000:] for job in jobs]
    outputs = [read_dataset(tmp_path / f"out{i}.nc", "spectra") for i in range(4)]
    for other in outputs[1:]:
        assert_same_arrays(outputs[0], other)
    (entry,) = (tmp_path / "cache").glob("*_k16.nc")
    assert_same_arrays(outputs[0], read_dataset(entry, "spectra"))
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary file left behind
