"""Tests of the learnable networks on tiny hand-built graphs: equivalent routes agree (batched vs one graph at
a time, projection helpers vs dense per-graph algebra, NLSF vs eq. 6/7 written mode by mode) and the
symmetries hold (node permutations, eigenvector sign flips), all in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from densim.models import BASELINES, MODELS, UnknownModelError, build_model
from densim.models.baselines import Frozen, LinearFloor
from densim.models.blocks import GraphInputs, project, synthesise
from densim.models.nlsf import NLSFBlock, NormNLSFBlock
from densim.models.spectral_mlp import SpectralMLPBlock

NODE_IN, EDGE_IN, OUT, K_MODES = 6, 4, 2, 8
TOLERANCE = {"rtol": 1e-9, "atol": 1e-10}  # float64: the routes differ only by summation order

LEARNED = [key for key in MODELS if key not in BASELINES]

# every learned model at a small size, plus the non-default variants of the NLSF and spatial blocks
CONFIGS = [(key, {}) for key in LEARNED] + [
    ("nlsf", {"channel_mixing": "full"}),
    ("nlsf_norm", {"channel_mixing": "full"}),
    ("spatial", {"update_edges": False}),
]
CONFIG_IDS = [key + "".join(f"-{v}" for v in extra.values()) for key, extra in CONFIGS]


def small_model(key: str, **extra) -> torch.nn.Module:
    """``key`` at test size (hidden 8, two blocks, k = 8), float64, reproducible."""
    torch.manual_seed(0)
    accepted = MODELS[key].block_parameters()
    sizes = {name: value for name, value in (("num_modes", K_MODES), ("filter_hidden", 8)) if name in accepted}
    return build_model(key, NODE_IN, EDGE_IN, OUT, hidden=8, num_layers=2, mlp_layers=1, **sizes, **extra).double()


def laplacian_modes(num_nodes: int, edges: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """First k eigenpairs of I - D^-1/2 A D^-1/2 by numpy.linalg.eigh, zero-padded when k > N.

    Returns eigenvalues (k,) and eigenvectors (N, k).
    """
    adjacency = np.zeros((num_nodes, num_nodes))
    adjacency[edges[:, 0], edges[:, 1]] = adjacency[edges[:, 1], edges[:, 0]] = 1.0
    scale = 1.0 / np.sqrt(adjacency.sum(1))
    values, vectors = np.linalg.eigh(np.eye(num_nodes) - scale[:, None] * adjacency * scale[None, :])
    found = min(k, num_nodes)
    padded_values, padded_vectors = np.zeros(k), np.zeros((num_nodes, k))
    padded_values[:found], padded_vectors[:, :found] = values[:found], vectors[:, :found]
    return padded_values, padded_vectors


def random_geometric_edges(num_nodes: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Bonds (M, 2) between points closer than ``radius`` in the unit square, plus a ring so it is connected."""
    points = rng.uniform(size=(num_nodes, 2))
    i, j = np.triu_indices(num_nodes, 1)
    near = np.linalg.norm(points[i] - points[j], axis=1) < radius
    ring = {(n, (n + 1) % num_nodes) for n in range(num_nodes)}
    bonds = {(min(a, b), max(a, b)) for a, b in [*zip(i[near], j[near]), *ring]}
    return np.array(sorted(bonds))


def periodic_chain_edges(num_nodes: int) -> np.ndarray:
    """Periodic 1D lattice with first and second neighbours (4-regular)."""
    return np.array(sorted({tuple(sorted((n, (n + s) % num_nodes))) for n in range(num_nodes) for s in (1, 2)}))


def make_graph(edges: np.ndarray, num_nodes: int, rng: np.random.Generator, k: int = K_MODES) -> Data:
    """A Data with random float64 features, both edge directions and its Laplacian modes."""
    values, vectors = laplacian_modes(num_nodes, edges, k)
    edge_index = np.concatenate([edges.T, edges.T[::-1]], axis=1)
    return Data(
        x=torch.tensor(rng.normal(size=(num_nodes, NODE_IN))),
        edge_index=torch.tensor(edge_index),
        edge_attr=torch.tensor(rng.normal(size=(edge_index.shape[1], EDGE_IN))),
        eigvecs=torch.tensor(vectors),
        eigvals=torch.tensor(values[None, :]),
    )


@pytest.fixture(scope="module")
def graphs() -> list[Data]:
    """Two graphs of different sizes: all k = 8 modes valid (11 nodes), and only 6 valid modes (6 nodes)."""
    rng = np.random.default_rng(4)
    return [make_graph(random_geometric_edges(11, 0.45, rng), 11, rng), make_graph(periodic_chain_edges(6), 6, rng)]


@pytest.fixture(scope="module")
def batch(graphs) -> Batch:
    return Batch.from_data_list(graphs)


def test_every_registered_model_is_a_distinct_class_with_a_valid_name_a_label_and_a_family():
    import re

    from densim.config import schema
    from densim.tables import MODEL_STYLES

    pattern = schema()["$defs"]["model"]["pattern"]
    assert len(set(MODELS.values())) == len(MODELS)
    for key, cls in MODELS.items():
        assert re.fullmatch(pattern, key) and key in MODEL_STYLES and cls.simulator is not None, key
    # the baselines are exactly the models with nothing to learn by gradient descent
    for key in MODELS:
        model = small_model(key) if hasattr(MODELS[key], "block_parameters") else build_model(key, NODE_IN, EDGE_IN, OUT)
        trainable = any(p.requires_grad for p in model.parameters()) and not getattr(model, "closed_form", False)
        assert trainable == (key not in BASELINES), key


def test_unknown_key_is_named_with_the_known_ones():
    with pytest.raises(UnknownModelError) as error:
        build_model("gcn", NODE_IN, EDGE_IN, OUT)
    assert "'gcn'" in str(error.value)
    assert all(key in str(error.value) for key in MODELS)
    assert isinstance(error.value, KeyError)


def test_unknown_hyperparameter_is_named():
    with pytest.raises(TypeError, match="unknown hyperparameter.*alpha.*accepts.*eps"):
        build_model("nlsf", NODE_IN, EDGE_IN, OUT, alpha=0.5)


@pytest.mark.parametrize(("key", "setting"), [
    ("spatial", {"hidden": 0}), ("spatial", {"num_layers": 0}), ("spatial", {"activation": "swish"}),
    ("spatial", {"update_edges": 1}), ("chebnet", {"K": 0}), ("spectral_mlp", {"num_modes": -1}),
    ("nlsf", {"eps": 0.0}), ("nlsf", {"channel_mixing": "dense"}), ("nlsf_norm", {"alpha": 1.5}),
    ("s2_nlsf_norm", {"alpha": 0.0}), ("s2_chebnet", {"K": 2.5}), ("igns", {"hidden": 7}), ("igns", {"warmup": -1}),
    ("igns_ti", {"step_size": 0.0}), ("igns", {"damping": 1}), ("graphcon", {"alpha": 0}),
])
def test_bad_hyperparameter_values_are_named(key, setting):
    (name,) = setting
    with pytest.raises(ValueError, match=name):
        build_model(key, NODE_IN, EDGE_IN, OUT, **setting)


@pytest.mark.parametrize("key", LEARNED)
def test_repr_shows_hyperparameters_that_rebuild_the_model(key):
    model = build_model(key, NODE_IN, EDGE_IN, OUT)
    assert all(f"{name}={value!r}" in repr(model) for name, value in model.hyperparameters.items())
    twin = build_model(key, NODE_IN, EDGE_IN, OUT, **model.hyperparameters)
    twin.load_state_dict(model.state_dict())  # same architecture, parameter for parameter
    assert twin.hyperparameters == model.hyperparameters


@pytest.mark.parametrize("key", MODELS)
def test_output_shape_at_default_size(key):
    rng = np.random.default_rng(1)
    graphs = [make_graph(random_geometric_edges(20, 0.4, rng), 20, rng, k=16),
              make_graph(periodic_chain_edges(12), 12, rng, k=16)]
    model = build_model(key, NODE_IN, EDGE_IN, OUT).double()
    output = model(Batch.from_data_list(graphs))
    assert output.shape == (32, OUT)
    assert torch.isfinite(output).all()


@pytest.mark.parametrize(("key", "extra"), CONFIGS, ids=CONFIG_IDS)
def test_permutation_equivariance(key, extra, graphs):
    model, graph = small_model(key, **extra), graphs[0]
    rng = np.random.default_rng(2)
    node_order = torch.tensor(rng.permutation(graph.num_nodes))  # new node n is old node node_order[n]
    new_index = torch.empty_like(node_order)
    new_index[node_order] = torch.arange(graph.num_nodes)
    edge_order = torch.tensor(rng.permutation(graph.num_edges))
    permuted = Data(x=graph.x[node_order], edge_index=new_index[graph.edge_index[:, edge_order]],
                    edge_attr=graph.edge_attr[edge_order], eigvecs=graph.eigvecs[node_order], eigvals=graph.eigvals)
    torch.testing.assert_close(model(permuted), model(graph)[node_order], **TOLERANCE)


@pytest.mark.parametrize(("key", "extra"), CONFIGS, ids=CONFIG_IDS)
def test_batched_equals_one_graph_at_a_time(key, extra, graphs, batch):
    model = small_model(key, **extra)
    torch.testing.assert_close(model(batch), torch.cat([model(graph) for graph in graphs]), **TOLERANCE)


@pytest.mark.parametrize(("key", "extra"), CONFIGS, ids=CONFIG_IDS)
def test_eigenvector_sign_flip_invariance(key, extra, batch):
    model = small_model(key, **extra)
    signs = torch.tensor(np.random.default_rng(3).choice([-1.0, 1.0], size=(batch.num_graphs, K_MODES)))
    signs[:, 0] = -1.0  # flip at least one mode of every graph
    flipped = batch.clone()
    flipped.eigvecs = batch.eigvecs * signs[batch.batch]
    torch.testing.assert_close(model(flipped), model(batch), **TOLERANCE)
    if model.uses_spectrum:  # not vacuous: the output does depend on the eigenvectors
        rotated = batch.clone()
        rotated.eigvecs = batch.eigvecs.roll(1, dims=1)
        assert not torch.allclose(model(rotated), model(batch))


@pytest.mark.parametrize(("key", "extra"), CONFIGS, ids=CONFIG_IDS)
def test_gradients_reach_every_parameter(key, extra, batch):
    model = small_model(key, **extra)
    model(batch).square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def dense_per_graph(graphs: list[Data]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(graph.eigvecs.numpy(), graph.x.numpy()) for graph in graphs]


def test_project_is_the_per_graph_transform(graphs, batch):
    coeffs = project(batch.x, batch.eigvecs, batch.batch, batch.num_graphs)
    assert coeffs.shape == (2, K_MODES, NODE_IN)
    for g, (vectors, x) in enumerate(dense_per_graph(graphs)):
        np.testing.assert_allclose(coeffs[g].numpy(), vectors.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(coeffs[1, 6:].numpy(), 0.0)  # padding modes of the 6-node graph


def test_synthesis_of_the_projection_is_the_orthogonal_projection(graphs, batch):
    projected = synthesise(project(batch.x, batch.eigvecs, batch.batch, batch.num_graphs), batch.eigvecs, batch.batch)
    expected = np.concatenate([vectors @ vectors.T @ x for vectors, x in dense_per_graph(graphs)])
    np.testing.assert_allclose(projected.numpy(), expected, rtol=1e-12, atol=1e-12)
    # the 6-node graph carries all its modes: the transform is inverted exactly
    np.testing.assert_allclose(projected[11:].numpy(), graphs[1].x.numpy(), rtol=1e-12, atol=1e-12)


def test_project_and_synthesise_on_one_graph_without_batch(graphs):
    graph = graphs[0]
    coeffs = project(graph.x, graph.eigvecs)
    torch.testing.assert_close(coeffs[0], graph.eigvecs.T @ graph.x)
    torch.testing.assert_close(synthesise(coeffs, graph.eigvecs), graph.eigvecs @ graph.eigvecs.T @ graph.x)


def test_unit_response_filter_returns_the_projection(graphs, batch):
    torch.manual_seed(0)
    block = SpectralMLPBlock(NODE_IN, 1, "relu", num_modes=K_MODES).double()
    with torch.no_grad():  # g(lambda) = 1 for every mode and channel
        block.response.last_linear.weight.zero_()
        block.response.last_linear.bias.fill_(1.0)
    inputs = GraphInputs.from_graph(batch, NODE_IN, EDGE_IN, uses_edges=False, uses_spectrum=True)
    expected = np.concatenate([vectors @ vectors.T @ x for vectors, x in dense_per_graph(graphs)])
    np.testing.assert_allclose(block.filter(batch.x, inputs).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channel_mixing", ["diagonal", "full"])
@pytest.mark.parametrize("block_class", [NLSFBlock, NormNLSFBlock])
def test_nlsf_filter_matches_the_study_equation_mode_by_mode(block_class, channel_mixing, graphs):
    """Eq. 6 / eq. 7 written as the sum over modes of (v v^T X) / (|v^T X| + eps) psi_i, on one graph."""
    torch.manual_seed(0)
    width = NODE_IN
    block = block_class(width, 1, "relu", num_modes=K_MODES, filter_hidden=8, channel_mixing=channel_mixing).double()
    graph = graphs[0]
    inputs = GraphInputs.from_graph(graph, NODE_IN, EDGE_IN, uses_edges=False, uses_spectrum=True)
    vectors, x = graph.eigvecs.numpy(), graph.x.numpy()
    coeffs = vectors.T @ x  # [k, d]
    if block_class is NLSFBlock:
        analysis, denominators = np.abs(coeffs), np.abs(coeffs) + block.eps  # eq. 6
    else:
        norms = np.linalg.norm(coeffs, axis=1)  # eq. 7
        analysis, denominators = norms, (norms ** block.alpha + block.eps)[:, None]
    weights = block.psi(torch.tensor(analysis.reshape(1, -1))).detach().numpy()
    if channel_mixing == "diagonal":
        psi = [np.diag(w) for w in weights.reshape(K_MODES, width)]
    else:
        psi = list(weights.reshape(K_MODES, width, width))
    expected = sum((np.outer(vectors[:, i], vectors[:, i]) @ x / denominators[i]) @ psi[i] for i in range(K_MODES))
    np.testing.assert_allclose(block.filter(graph.x, inputs).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_model_uses_the_leading_modes_when_the_graph_carries_more(graphs):
    model = small_model("nlsf_norm")
    rng = np.random.default_rng(5)
    graph = graphs[0]
    extended = graph.clone()
    extended.eigvecs = torch.cat([graph.eigvecs, torch.tensor(rng.normal(size=(graph.num_nodes, 3)))], dim=1)
    extended.eigvals = torch.cat([graph.eigvals, torch.ones(1, 3, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(model(extended), model(graph), **TOLERANCE)


@pytest.mark.parametrize(("change", "message"), [
    ({"eigvals": torch.zeros(K_MODES, dtype=torch.float64)}, r"eigvals.*\[1, k\]"),
    ({"eigvecs": None}, "eigvecs is missing"),
    ({"eigvecs": torch.zeros(11, 4, dtype=torch.float64), "eigvals": torch.zeros(1, 4, dtype=torch.float64)},
     "num_modes=8"),
    ({"x": torch.zeros(11, 3, dtype=torch.float64)}, "node_in=6"),
    ({"edge_attr": None}, "edge_attr is missing"),
])
def test_malformed_graphs_are_named(change, message, graphs):
    graph = graphs[0].clone()
    for name, value in change.items():
        setattr(graph, name, value)
    with pytest.raises(ValueError, match=message):
        small_model("s2_nlsf")(graph)


def test_baselines_take_no_hyperparameters():
    for key in BASELINES:
        assert build_model(key, NODE_IN, EDGE_IN, OUT).hyperparameters == {}
        with pytest.raises(TypeError, match="unknown hyperparameter.*hidden"):
            build_model(key, NODE_IN, EDGE_IN, OUT, hidden=8)


def test_frozen_names_its_simulator_and_outputs_zeros(batch):
    from densim.simulator import FrozenSimulator

    model = build_model("frozen", NODE_IN, EDGE_IN, OUT)
    assert isinstance(model, Frozen) and model.simulator is FrozenSimulator and not list(model.parameters())
    assert torch.equal(model(batch), torch.zeros(batch.num_nodes, OUT, dtype=batch.x.dtype))


def test_linear_floor_fit_is_the_least_squares_solution():
    torch.manual_seed(0)
    features = torch.randn(500, NODE_IN, dtype=torch.float64)
    weight, bias = torch.randn(OUT, NODE_IN, dtype=torch.float64), torch.randn(OUT, dtype=torch.float64)
    model = LinearFloor(NODE_IN, EDGE_IN, OUT).double()
    model.fit(features, features @ weight.T + bias)  # exactly linear: recovered to rounding
    torch.testing.assert_close(model.linear.weight, weight, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.linear.bias, bias, rtol=1e-10, atol=1e-10)
    noisy = features @ weight.T + bias + 0.1 * torch.randn(500, OUT, dtype=torch.float64)
    model.fit(features, noisy)
    residual = noisy - model(Data(x=features))
    # at the least-squares optimum the residual is orthogonal to every feature and to the constant
    design = torch.cat([features, torch.ones(500, 1, dtype=torch.float64)], dim=1)
    assert (design.T @ residual).abs().max() < 1e-9


def _first_node_output(model, graph: Data) -> torch.Tensor:
    """Node 0's output of one prediction: one frame for the networks that predict from features, one latent step from
    the encoded frame for IGNS, whose rollouts take one step a frame (its receptive field)."""
    if hasattr(model, "advance"):
        q, p = model.encode(graph)
        q, p = model.advance(q, p, graph.edge_index, model.edges(graph), 0)
        return torch.cat([q, p], dim=-1)[0]
    return model(graph)[0]


@pytest.mark.parametrize(("key", "extra"), CONFIGS, ids=CONFIG_IDS)
def test_the_receptive_field_is_how_far_one_prediction_reads(key, extra):
    """On a ring of 24 nodes (node d is min(d, 24 - d) bonds from node 0), changing the features of a node just beyond
    the receptive field leaves node 0's prediction as it is, and changing one at its edge does not (tanh: no ReLU
    unit that is off at node 0 can hide a change)."""
    num_nodes = 24
    rng = np.random.default_rng(5)
    graph = make_graph(np.array([(n, (n + 1) % num_nodes) for n in range(num_nodes)]), num_nodes, rng, k=16)
    model = small_model(key, activation="tanh", **extra)
    reach = model.receptive_field
    before = _first_node_output(model, graph)

    def moved(node: int) -> bool:
        changed = graph.clone()
        changed.x = graph.x.clone()
        changed.x[node] += 1.0
        return not torch.allclose(_first_node_output(model, changed), before, rtol=0, atol=1e-12)

    if np.isinf(reach):
        assert moved(num_nodes // 2)
    else:
        assert 1 <= reach < num_nodes // 2 - 1
        assert moved(int(reach)) and not moved(int(reach) + 1) and not moved(num_nodes - int(reach) - 1)


def test_a_baseline_reads_its_own_node_only():
    assert all(build_model(key, NODE_IN, EDGE_IN, OUT).receptive_field == 0 for key in BASELINES)
