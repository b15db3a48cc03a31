r"""Spatial message passing: the encode-process-decode graph network of the study (section II.2.1, eq. 1-2)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing

from densim.models.blocks import MLP, EncodeProcessDecode, GraphInputs, check_positive_int


class SpatialBlock(MessagePassing):
    r"""One message-passing processor block (interaction network) with sum aggregation.

    .. math::

        \mathbf{m}_{ij} = \phi\big(\mathbf{h}_i, \mathbf{h}_j, \mathbf{e}_{ij}\big), \qquad
        \Delta\mathbf{h}_i = \psi\Big(\mathbf{h}_i, \sum_{j \in \mathcal{N}(i)} \mathbf{m}_{ij}\Big), \qquad
        \mathbf{e}'_{ij} = \begin{cases} \mathbf{e}_{ij} + \mathbf{m}_{ij} & \text{update\_edges} \\
        \mathbf{e}_{ij} & \text{otherwise} \end{cases}

    :math:`\phi` (message, on :math:`3d` inputs) and :math:`\psi` (update, on :math:`2d` inputs) are MLPs ending
    in LayerNorm. The model adds :math:`\Delta\mathbf{h}` to :math:`\mathbf{h}` (residual). With
    ``update_edges=False`` the encoded edge features are shared by all blocks, as eq. 1 of the study writes
    it; with ``update_edges=True`` (default) the messages become the next block's edge latents, as in the
    graph-network simulator of Sanchez-Gonzalez et al. (2020).

    Parameters
    ----------
    hidden : int
        Latent width d of nodes, edges and messages.
    mlp_layers : int
        Hidden layers of :math:`\phi` and :math:`\psi`.
    activation : str
        Their nonlinearity.
    update_edges : bool, optional
        Carry the messages as edge latents to the next block (default ``True``).

    Shapes
    ------
    input: node latents [|V|, d], edge latents [|E|, d], ``edge_index`` [2, |E|] (``[0]`` sender j,
    ``[1]`` receiver i); output: node update [|V|, d], edge latents [|E|, d].
    """

    uses_edges: ClassVar[bool] = True
    uses_spectrum: ClassVar[bool] = False
    #: One message per bond: information crosses one bond per block.
    hops: ClassVar[float] = 1.0

    def __init__(self, hidden: int, mlp_layers: int, activation: str, update_edges: bool = True) -> None:
        super().__init__(aggr="sum")
        check_positive_int("hidden", hidden)
        if not isinstance(update_edges, bool):
            raise ValueError(f"update_edges must be a bool, got {update_edges!r}")
        self.hidden = hidden
        self.update_edges = update_edges
        self.message_mlp = MLP(3 * hidden, hidden, hidden, mlp_layers, activation, layer_norm=True)
        self.update_mlp = MLP(2 * hidden, hidden, hidden, mlp_layers, activation, layer_norm=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.message_mlp.reset_parameters()
        self.update_mlp.reset_parameters()

    def forward(self, h: Tensor, e: Tensor | None, graph: GraphInputs) -> tuple[Tensor, Tensor]:
        """Node update and next edge latents."""
        messages = self.edge_updater(graph.edge_index, h=h, e=e)
        update = self.propagate(graph.edge_index, h=h, messages=messages)
        return update, (e + messages if self.update_edges else e)

    def edge_update(self, h_i: Tensor, h_j: Tensor, e: Tensor) -> Tensor:
        return self.message_mlp(torch.cat([h_i, h_j, e], dim=-1))

    def message(self, messages: Tensor) -> Tensor:
        return messages

    def update(self, inputs: Tensor, h: Tensor) -> Tensor:
        return self.update_mlp(torch.cat([h, inputs], dim=-1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hidden={self.hidden}, update_edges={self.update_edges})"


class SpatialGNN(EncodeProcessDecode):
    r"""Encode-process-decode message-passing simulator network (study eq. 1-2; Sanchez-Gonzalez et al. 2020).

    Node and edge MLP encoders, ``num_layers`` :class:`SpatialBlock` with residual updates, MLP decoder:

    .. math::

        \mathbf{h}_i \leftarrow \mathbf{h}_i + \psi\Big(\mathbf{h}_i, \sum_{j \in \mathcal{N}(i)}
        \phi(\mathbf{h}_i, \mathbf{h}_j, \mathbf{e}_{ij})\Big)

    Information travels ``num_layers`` hops. Equivariant to node permutations; reads no eigenvectors.

    Parameters
    ----------
    node_in, edge_in, out, hidden=64, num_layers=4, mlp_layers=2, activation="relu"
        See :class:`~densim.models.blocks.EncodeProcessDecode`.
    update_edges : bool, optional
        See :class:`SpatialBlock` (default ``True``).

    Shapes
    ------
    input ``x`` [|V|, node_in], ``edge_index`` [2, |E|], ``edge_attr`` [|E|, edge_in], ``batch`` [|V|];
    output [|V|, out].
    """

    block = SpatialBlock
