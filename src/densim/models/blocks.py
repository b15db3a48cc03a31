r"""Building blocks shared by every learnable network: MLPs, the graph inputs, the per-graph spectral
projection and synthesis, the spectral block and the encode-process-decode skeleton.

Every network is

.. math::

    \mathbf{h}^{(0)}_i = \varepsilon^x(\mathbf{x}_i), \qquad
    \mathbf{e}^{(0)}_{ij} = \varepsilon^e(\mathbf{e}_{ij}), \qquad
    \mathbf{h}^{(\ell)} = \mathbf{h}^{(\ell-1)} + \Delta^{(\ell)}\big(\mathbf{h}^{(\ell-1)},
    \mathbf{e}^{(\ell-1)}\big), \qquad
    \mathbf{y}_i = \delta^x\big(\mathbf{h}^{(L)}_i\big),

with MLP encoders :math:`\varepsilon` (ending in LayerNorm), MLP decoder :math:`\delta` and ``L`` processor
blocks :math:`\Delta^{(\ell)}` that return the residual update of the node latents (and the edge latents for
the next block). The blocks are what distinguishes the models.

References
----------
.. [1] A. Sanchez-Gonzalez et al., "Learning to simulate complex physics with graph networks", ICML 2020.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from densim.simulator import AccelerationSimulator, Simulator

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}

#: Constructor arguments that every processor block receives from its model.
COMMON_BLOCK_ARGUMENTS = ("hidden", "mlp_layers", "activation")


def check_positive_int(name: str, value: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_open_unit(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``0 < value < 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")


def check_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def activation_module(name: str) -> nn.Module:
    """A fresh activation module by name (one of :data:`ACTIVATIONS`)."""
    check_choice("activation", name, tuple(ACTIVATIONS))
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    r"""Multilayer perceptron ``Linear -> act -> ... -> Linear`` with an optional output LayerNorm.

    .. math::

        \mathrm{MLP}(\mathbf{x}) = \mathrm{LN}\big(W_{n} \sigma(\cdots \sigma(W_0 \mathbf{x} + b_0)
        \cdots) + b_n\big)

    Parameters
    ----------
    in_channels, hidden_channels, out_channels : int
        Input, hidden and output widths.
    num_hidden_layers : int
        Number of hidden layers (0 gives a single affine map).
    activation : str, optional
        Nonlinearity between layers (default ``"relu"``).
    layer_norm : bool, optional
        Apply :class:`torch.nn.LayerNorm` to the output, as the encoders and processor MLPs of [1]_ do
        (default ``False``).

    Shapes
    ------
    input ``[*, in_channels]``, output ``[*, out_channels]``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_hidden_layers: int,
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels)):
            check_positive_int(name, value)
        if isinstance(num_hidden_layers, bool) or not isinstance(num_hidden_layers, int) or num_hidden_layers < 0:
            raise ValueError(f"num_hidden_layers must be a non-negative integer, got {num_hidden_layers!r}")
        widths = [in_channels] + [hidden_channels] * num_hidden_layers + [out_channels]
        layers: list[nn.Module] = []
        for position, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            if position > 0:
                layers.append(activation_module(activation))
            layers.append(nn.Linear(width_in, width_out))
        if layer_norm:
            layers.append(nn.LayerNorm(out_channels))
        super().__init__(*layers)
        self.reset_parameters()

    @property
    def last_linear(self) -> nn.Linear:
        """The output affine layer."""
        return [module for module in self if isinstance(module, nn.Linear)][-1]

    def reset_parameters(self) -> None:
        for module in self:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


@dataclass(frozen=True)
class GraphInputs:
    """The fields of a :class:`torch_geometric.data.Data` / ``Batch`` that the networks read, checked.

    Attributes
    ----------
    x : Tensor, shape [N, node_in]
        Normalised node features.
    edge_index : Tensor of int64, shape [2, E]
        Both directions of every bond; ``edge_index[0]`` is the sender ``j``, ``edge_index[1]`` the receiver ``i``.
    edge_attr : Tensor, shape [E, edge_in], or None
        Normalised edge features (required by models with a spatial part).
    batch : Tensor of int64, shape [N], or None
        Graph index of each node, sorted as PyG batching leaves it; None for one graph.
    num_graphs : int
        Number of graphs G.
    eigvecs : Tensor, shape [N, k], or None
        Each graph's first k eigenvectors of its symmetric normalised Laplacian (rows of its own nodes), zero
        columns where a graph has fewer than k modes (required by the spectral models); cast to ``x.dtype``.
    eigvals : Tensor, shape [G, k], or None
        The matching eigenvalues, one row per graph (finite; padding modes any finite value, e.g. 0); cast to
        ``x.dtype``. Store them as shape [1, k] in each ``Data``: PyG batching concatenates along dim 0.
    """

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor | None
    batch: Tensor | None
    num_graphs: int
    eigvecs: Tensor | None
    eigvals: Tensor | None
    #: :meth:`spectral_basis` by number of modes, made once per forward pass and shared by every block.
    _bases: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_graph(cls, graph: Any, node_in: int, edge_in: int, uses_edges: bool, uses_spectrum: bool) -> GraphInputs:
        """Read and check the fields a model needs; errors name the field at fault.

        ``edge_attr`` is read only when ``uses_edges``, ``eigvecs`` and ``eigvals`` only when ``uses_spectrum``.
        """
        x = _field(graph, "x")
        if x.dim() != 2 or x.shape[1] != node_in:
            raise ValueError(f"graph.x has shape {list(x.shape)}, expected [num_nodes, node_in={node_in}]")
        num_nodes = x.shape[0]
        edge_index = _field(graph, "edge_index")
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"graph.edge_index has shape {list(edge_index.shape)}, expected [2, num_edges]")
        edge_attr = None
        if uses_edges:
            edge_attr = _field(graph, "edge_attr")
            if edge_attr.dim() != 2 or edge_attr.shape != (edge_index.shape[1], edge_in):
                raise ValueError(f"graph.edge_attr has shape {list(edge_attr.shape)}, "
                                 f"expected [num_edges={edge_index.shape[1]}, edge_in={edge_in}]")
        batch = getattr(graph, "batch", None)
        if batch is not None and batch.shape != (num_nodes,):
            raise ValueError(f"graph.batch has shape {list(batch.shape)}, expected [num_nodes={num_nodes}]")
        num_graphs = getattr(graph, "num_graphs", None)
        eigvecs = eigvals = None
        if uses_spectrum:
            eigvecs, eigvals = _field(graph, "eigvecs"), _field(graph, "eigvals")
            if eigvals.dim() != 2:
                raise ValueError(f"graph.eigvals has shape {list(eigvals.shape)}, expected [num_graphs, k]: store "
                                 "each graph's eigenvalues with shape [1, k] so that batching stacks them")
            if num_graphs is None:
                num_graphs = eigvals.shape[0]
            if eigvecs.dim() != 2 or eigvecs.shape != (num_nodes, eigvals.shape[1]):
                raise ValueError(f"graph.eigvecs has shape {list(eigvecs.shape)}, expected "
                                 f"[num_nodes={num_nodes}, k={eigvals.shape[1]}] (k from graph.eigvals)")
            if eigvals.shape[0] != num_graphs:
                raise ValueError(f"graph.eigvals has {eigvals.shape[0]} rows for {num_graphs} graphs")
            # spectra are stored in float64; the network computes in the dtype of its features
            eigvecs, eigvals = eigvecs.to(x.dtype), eigvals.to(x.dtype)
        if num_graphs is None:
            num_graphs = 1 if batch is None or num_nodes == 0 else int(batch.max()) + 1
        return cls(x, edge_index, edge_attr, batch, int(num_graphs), eigvecs, eigvals)

    def leading_modes(self, num_modes: int) -> tuple[Tensor, Tensor]:
        """The first ``num_modes`` eigenvectors ``[N, num_modes]`` and eigenvalues ``[G, num_modes]``."""
        if self.eigvecs is None or self.eigvals is None:
            raise ValueError("this model needs graph.eigvecs and graph.eigvals")
        if self.eigvecs.shape[1] < num_modes:
            raise ValueError(f"the model uses num_modes={num_modes} Laplacian modes but the graph carries only "
                             f"k={self.eigvecs.shape[1]}")
        return self.eigvecs[:, :num_modes], self.eigvals[:, :num_modes]

    def spectral_basis(self, num_modes: int) -> SpectralBasis:
        """The first ``num_modes`` eigenvectors as a :class:`SpectralBasis`, batched once for all the blocks of a pass."""
        if num_modes not in self._bases:
            self._bases[num_modes] = SpectralBasis.of(self.leading_modes(num_modes)[0], self.batch, self.num_graphs)
        return self._bases[num_modes]


@dataclass(frozen=True)
class SpectralBasis:
    """Each graph's eigenvectors as one dense batch ``[G, n_max, k]`` with its node mask ``[G, n_max]``: analysis and
    synthesis on them are batched matrix products (:func:`project`, :func:`synthesise`)."""

    vectors: Tensor
    mask: Tensor

    @classmethod
    def of(cls, eigvecs: Tensor, batch: Tensor | None = None, num_graphs: int | None = None) -> SpectralBasis:
        return cls(*to_dense_batch(eigvecs, batch, batch_size=num_graphs))

    def project(self, x: Tensor) -> Tensor:
        """Graph Fourier coefficients ``[G, k, d]`` of node features ``[N, d]`` (:func:`project`)."""
        dense_x = x.new_zeros((*self.mask.shape, x.shape[1]))
        dense_x[self.mask] = x
        return self.vectors.transpose(1, 2) @ dense_x

    def synthesise(self, coeffs: Tensor) -> Tensor:
        """Node features ``[N, d]`` of per-graph coefficients ``[G, k, d]`` (:func:`synthesise`)."""
        return (self.vectors @ coeffs)[self.mask]


def _field(graph: Any, name: str) -> Tensor:
    value = getattr(graph, name, None)
    if value is None:
        raise ValueError(f"graph.{name} is missing")
    return value


def project(x: Tensor, eigvecs: Tensor, batch: Tensor | None = None, num_graphs: int | None = None) -> Tensor:
    r"""Graph Fourier coefficients of node features on each graph's own eigenvectors (analysis).

    .. math::

        \mathbf{C}_g = \mathbf{V}_g^\top \mathbf{X}_g, \qquad
        C_{g,n,c} = \sum_{i \in g} V_{i n} X_{i c}

    Parameters
    ----------
    x : Tensor, shape [N, d]
        Node features of all graphs.
    eigvecs : Tensor, shape [N, k]
        Row ``i`` holds the eigenvectors of node ``i``'s graph evaluated at ``i``.
    batch : Tensor of int64, shape [N], optional
        Graph index of each node, sorted (PyG batching); None for one graph.
    num_graphs : int, optional
        G; from ``batch`` when omitted.

    Returns
    -------
    Tensor, shape [G, k, d]
    """
    return SpectralBasis.of(eigvecs, batch, num_graphs).project(x)


def synthesise(coeffs: Tensor, eigvecs: Tensor, batch: Tensor | None = None) -> Tensor:
    r"""Node features from per-graph spectral coefficients (synthesis, the inverse of :func:`project` on
    the span of the k modes).

    .. math::

        \mathbf{Y}_g = \mathbf{V}_g \mathbf{C}_g, \qquad Y_{i c} = \sum_n V_{i n} C_{g(i), n, c}

    Parameters
    ----------
    coeffs : Tensor, shape [G, k, d]
    eigvecs : Tensor, shape [N, k]
    batch : Tensor of int64, shape [N], optional
        Sorted graph index of each node; None for one graph.

    Returns
    -------
    Tensor, shape [N, d]
    """
    return SpectralBasis.of(eigvecs, batch, coeffs.shape[0]).synthesise(coeffs)


class SpectralBlock(nn.Module):
    r"""Base of the spectral processor blocks: a filter, a nonlinearity and a channel mixing.

    .. math::

        \Delta(\mathbf{H}) = \sigma\big(F(\mathbf{H})\big) W + \mathbf{1} b^\top

    Subclasses define the filter :math:`F` in :meth:`filter`. Filters built from ``V V^T``-type operators are
    invariant to eigenvector sign flips; all are equivariant to node permutations, and the mixing acts per node.

    Parameters
    ----------
    hidden : int
        Latent width d.
    activation : str
        Nonlinearity :math:`\sigma`.
    """

    uses_edges: ClassVar[bool] = False
    uses_spectrum: ClassVar[bool] = True
    #: Bonds information crosses in one block: every node reaches every other through the global eigenvectors.
    hops: ClassVar[float] = math.inf

    def __init__(self, hidden: int, activation: str) -> None:
        super().__init__()
        check_positive_int("hidden", hidden)
        self.hidden = hidden
        self.act = activation_module(activation)
        self.mix = nn.Linear(hidden, hidden)

    def reset_parameters(self) -> None:
        self.mix.reset_parameters()

    def filter(self, h: Tensor, graph: GraphInputs) -> Tensor:
        """The spectral filter ``[N, d] -> [N, d]``."""
        raise NotImplementedError

    def forward(self, h: Tensor, e: Tensor | None, graph: GraphInputs) -> tuple[Tensor, Tensor | None]:
        """Residual update ``[N, d]`` of the node latents; the edge latents pass through."""
        return self.mix(self.act(self.filter(h, graph))), e


def own_parameters(block: type[nn.Module]) -> dict[str, inspect.Parameter]:
    """The constructor parameters of a block class beyond :data:`COMMON_BLOCK_ARGUMENTS`, in order."""
    parameters = list(inspect.signature(block.__init__).parameters.values())[1:]
    return {p.name: p for p in parameters if p.name not in COMMON_BLOCK_ARGUMENTS}


class EncodeProcessDecode(nn.Module):
    r"""Encode-process-decode network on node (and edge) latents; subclasses choose the processor block.

    .. math::

        \mathbf{h}^{(0)} = \varepsilon^x(\mathbf{X}), \quad
        \mathbf{e}^{(0)} = \varepsilon^e(\mathbf{E}), \quad
        (\Delta\mathbf{h}, \mathbf{e}^{(\ell)}) = \mathrm{block}^{(\ell)}(\mathbf{h}^{(\ell-1)},
        \mathbf{e}^{(\ell-1)}), \quad
        \mathbf{h}^{(\ell)} = \mathbf{h}^{(\ell-1)} + \Delta\mathbf{h}, \quad
        \mathbf{Y} = \delta^x(\mathbf{h}^{(L)})

    Every block has its own parameters. The encoders end in LayerNorm, the decoder does not. The edge encoder
    exists only when the block reads edge features.

    Parameters
    ----------
    node_in : int
        Node feature width (2 h for h velocities in 2D).
    edge_in : int
        Edge feature width (4: dx, dy, |r|, 1/l0); unused by the purely spectral models.
    out : int
        Output width (2: the acceleration).
    hidden : int, optional
        Latent width d (default 64).
    num_layers : int, optional
        Number of processor blocks L (default 4).
    mlp_layers : int, optional
        Hidden layers of every MLP: encoders, decoder and those inside the blocks (default 2).
    activation : str, optional
        One of ``relu``, ``silu``, ``gelu``, ``tanh``, ``elu`` (default ``"relu"``).
    **block_hyperparameters
        The block's own hyperparameters (see each model); unknown names raise ``TypeError``.

    Shapes
    ------
    input: a ``Data``/``Batch`` with ``x`` [|V|, node_in], ``edge_index`` [2, |E|], ``edge_attr`` [|E|, edge_in],
    ``batch`` [|V|] (optional), ``eigvecs`` [|V|, k] and ``eigvals`` [|G|, k] (spectral models);
    output [|V|, out].
    """

    block: ClassVar[type[nn.Module]]
    #: The simulator family that wraps this network (see :func:`densim.models.build_simulator`).
    simulator: ClassVar[type[Simulator]] = AccelerationSimulator
    #: Trained by gradient descent (a closed-form network, such as ``linear_floor``, has ``fit`` instead).
    closed_form: ClassVar[bool] = False

    def __init__(
        self,
        node_in: int,
        edge_in: int,
        out: int,
        hidden: int = 64,
        num_layers: int = 4,
        mlp_layers: int = 2,
        activation: str = "relu",
        **block_hyperparameters: Any,
    ) -> None:
        super().__init__()
        for name, value in (("node_in", node_in), ("edge_in", edge_in), ("out", out), ("hidden", hidden),
                            ("num_layers", num_layers)):
            check_positive_int(name, value)
        if isinstance(mlp_layers, bool) or not isinstance(mlp_layers, int) or mlp_layers < 0:
            raise ValueError(f"mlp_layers must be a non-negative integer, got {mlp_layers!r}")
        check_choice("activation", activation, tuple(ACTIVATIONS))
        self.node_in, self.edge_in, self.out = node_in, edge_in, out
        self.hidden, self.num_layers, self.mlp_layers, self.activation = hidden, num_layers, mlp_layers, activation
        self.block_hyperparameters = self.complete_block_hyperparameters(block_hyperparameters)
        self.blocks = nn.ModuleList(
            self.make_block(hidden, mlp_layers, activation, **self.block_hyperparameters) for _ in range(num_layers)
        )
        self.uses_edges: bool = self.blocks[0].uses_edges
        self.uses_spectrum: bool = self.blocks[0].uses_spectrum
        self.node_encoder = MLP(node_in, hidden, hidden, mlp_layers, activation, layer_norm=True)
        self.edge_encoder = (MLP(edge_in, hidden, hidden, mlp_layers, activation, layer_norm=True)
                             if self.uses_edges else None)
        self.decoder = MLP(hidden, hidden, out, mlp_layers, activation)
        self.reset_parameters()

    @classmethod
    def block_parameters(cls) -> dict[str, inspect.Parameter]:
        """The block's own hyperparameters (name -> :class:`inspect.Parameter` with its default)."""
        return own_parameters(cls.block)

    @classmethod
    def make_block(cls, hidden: int, mlp_layers: int, activation: str, **block_hyperparameters: Any) -> nn.Module:
        """One processor block."""
        return cls.block(hidden, mlp_layers, activation, **block_hyperparameters)

    @classmethod
    def complete_block_hyperparameters(cls, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` with defaults filled in, in signature order; unknown names raise ``TypeError``."""
        known = cls.block_parameters()
        unknown = sorted(set(given) - set(known))
        if unknown:
            accepted = ["hidden", "num_layers", "mlp_layers", "activation", *known]
            raise TypeError(f"{cls.__name__} got unknown hyperparameter(s) {', '.join(unknown)}; "
                            f"it accepts {', '.join(accepted)}")
        return {name: given.get(name, parameter.default) for name, parameter in known.items()}

    @property
    def receptive_field(self) -> float:
        """Bonds information crosses in one prediction (one frame): the sum of the blocks' hops (inf: global)."""
        return float(sum(block.hops for block in self.blocks))

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter with its value: ``build_model(key, node_in, edge_in, out, **this)`` rebuilds."""
        return {"hidden": self.hidden, "num_layers": self.num_layers, "mlp_layers": self.mlp_layers,
                "activation": self.activation, **self.block_hyperparameters}

    def reset_parameters(self) -> None:
        self.node_encoder.reset_parameters()
        if self.edge_encoder is not None:
            self.edge_encoder.reset_parameters()
        for block in self.blocks:
            block.reset_parameters()
        self.decoder.reset_parameters()

    def forward(self, graph: Any) -> Tensor:
        """Output ``[N, out]`` for a ``Data``/``Batch`` (fields in the class docstring)."""
        inputs = GraphInputs.from_graph(graph, self.node_in, self.edge_in, self.uses_edges, self.uses_spectrum)
        h = self.node_encoder(inputs.x)
        e = self.edge_encoder(inputs.edge_attr) if self.edge_encoder is not None else None
        for block in self.blocks:
            update, e = block(h, e, inputs)
            h = h + update
        return self.decoder(h)

    def __repr__(self) -> str:
        settings = {"node_in": self.node_in, "edge_in": self.edge_in, "out": self.out, **self.hyperparameters}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in settings.items())})"


class LatentDynamicsNetwork(nn.Module):
    """Base of the networks that run latent dynamics between an encoder and a decoder (IGNS, GraphCON) rather
    than :class:`EncodeProcessDecode` blocks: widths checked, hyperparameters kept, ``repr`` that rebuilds.

    Subclasses call ``super().__init__(node_in, edge_in, out, **hyperparameters)`` with every hyperparameter.
    """

    simulator: ClassVar[type[Simulator]] = AccelerationSimulator
    closed_form: ClassVar[bool] = False
    uses_spectrum: ClassVar[bool] = False

    def __init__(self, node_in: int, edge_in: int, out: int, **hyperparameters: Any) -> None:
        super().__init__()
        for name, value in (("node_in", node_in), ("edge_in", edge_in), ("out", out), ("hidden", hyperparameters["hidden"]),
                            ("num_layers", hyperparameters["num_layers"])):
            check_positive_int(name, value)
        check_choice("activation", hyperparameters["activation"], tuple(ACTIVATIONS))
        self.node_in, self.edge_in, self.out = node_in, edge_in, out
        self._hyperparameters = hyperparameters

    @classmethod
    def block_parameters(cls) -> dict:
        """No :class:`EncodeProcessDecode` blocks: none."""
        return {}

    @property
    def receptive_field(self) -> float:
        """Bonds information crosses in one prediction (one frame): one per latent step, ``num_layers`` steps a frame."""
        return float(self._hyperparameters["num_layers"])

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter with its value: ``build_model(key, node_in, edge_in, out, **this)`` rebuilds."""
        return dict(self._hyperparameters)

    def __repr__(self) -> str:
        settings = {"node_in": self.node_in, "edge_in": self.edge_in, "out": self.out, **self._hyperparameters}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in settings.items())})"
