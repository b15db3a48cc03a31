r"""Spatio-spectral networks (S²GNN, Geisler et al. 2024; study section II.3): every block adds a spatial
message-passing update and a spectral filter update of the same latents.

References
----------
.. [1] S. Geisler, A. Kosmala, D. Herbst, S. Günnemann, "Spatio-spectral graph neural networks",
   NeurIPS 2024, https://arxiv.org/abs/2405.19121.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from torch import Tensor, nn

from densim.models.blocks import EncodeProcessDecode, GraphInputs, SpectralBlock, own_parameters
from densim.models.chebnet import ChebBlock
from densim.models.nlsf import NLSFBlock, NormNLSFBlock
from densim.models.spatial import SpatialBlock
from densim.models.spectral_mlp import SpectralMLPBlock


class SpatioSpectralBlock(nn.Module):
    r"""Sum of a spatial and a spectral block applied to the same latents ([1]_, additive form).

    .. math::

        (\Delta_s, \mathbf{e}') = \mathrm{spatial}(\mathbf{H}, \mathbf{E}), \qquad
        \Delta_f = \mathrm{spectral}(\mathbf{H}), \qquad
        \Delta(\mathbf{H}, \mathbf{E}) = (\Delta_s + \Delta_f, \mathbf{e}')

    Local interactions travel through the message passing, long-range ones through the k global modes. It
    inherits the symmetries of both parts: permutation equivariance, and sign invariance of the spectral part.

    Parameters
    ----------
    spatial : nn.Module
        A block with the processor interface that reads edges (:class:`~densim.models.spatial.SpatialBlock`).
    spectral : SpectralBlock
        Any spectral block.

    Shapes
    ------
    input: node latents [|V|, d], edge latents [|E|, d]; output: node update [|V|, d], edge latents [|E|, d].
    """

    def __init__(self, spatial: nn.Module, spectral: SpectralBlock) -> None:
        super().__init__()
        self.spatial, self.spectral = spatial, spectral
        self.uses_edges: bool = spatial.uses_edges or spectral.uses_edges
        self.uses_spectrum: bool = spatial.uses_spectrum or spectral.uses_spectrum
        self.reset_parameters()

    @property
    def hops(self) -> float:
        return max(self.spatial.hops, self.spectral.hops)

    def reset_parameters(self) -> None:
        self.spatial.reset_parameters()
        self.spectral.reset_parameters()

    def forward(self, h: Tensor, e: Tensor | None, graph: GraphInputs) -> tuple[Tensor, Tensor | None]:
        spatial_update, e_next = self.spatial(h, e, graph)
        spectral_update, _ = self.spectral(h, e, graph)
        return spatial_update + spectral_update, e_next

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spatial={self.spatial!r}, spectral={self.spectral!r})"


class SpatioSpectral(EncodeProcessDecode):
    r"""Encoder, ``num_layers`` :class:`SpatioSpectralBlock` (a :class:`~densim.models.spatial.SpatialBlock`
    plus a ``spectral_block``), decoder; subclasses only name the spectral block.

    .. math::

        \mathbf{h}_i \leftarrow \mathbf{h}_i + \psi\Big(\mathbf{h}_i, \sum_{j \in \mathcal{N}(i)}
        \phi(\mathbf{h}_i, \mathbf{h}_j, \mathbf{e}_{ij})\Big) + \sigma\big(F(\mathbf{H})\big)_i W + b

    Parameters
    ----------
    node_in, edge_in, out, hidden=64, num_layers=4, mlp_layers=2, activation="relu"
        See :class:`~densim.models.blocks.EncodeProcessDecode`.
    update_edges : bool, optional
        See :class:`~densim.models.spatial.SpatialBlock` (default ``True``).
    **spectral hyperparameters
        Those of the spectral block, with its defaults.

    Shapes
    ------
    input ``x`` [|V|, node_in], ``edge_index`` [2, |E|], ``edge_attr`` [|E|, edge_in], ``batch`` [|V|],
    ``eigvecs`` [|V|, k], ``eigvals`` [|G|, k] (when the spectral block reads them); output [|V|, out].
    """

    spatial_block: ClassVar[type[nn.Module]] = SpatialBlock
    spectral_block: ClassVar[type[SpectralBlock]]

    @classmethod
    def block_parameters(cls) -> dict[str, inspect.Parameter]:
        return {**own_parameters(cls.spatial_block), **own_parameters(cls.spectral_block)}

    @classmethod
    def make_block(cls, hidden: int, mlp_layers: int, activation: str, **block_hyperparameters: Any) -> nn.Module:
        spatial_names = own_parameters(cls.spatial_block)
        spatial = cls.spatial_block(hidden, mlp_layers, activation,
                                    **{k: v for k, v in block_hyperparameters.items() if k in spatial_names})
        spectral = cls.spectral_block(hidden, mlp_layers, activation,
                                      **{k: v for k, v in block_hyperparameters.items() if k not in spatial_names})
        return SpatioSpectralBlock(spatial, spectral)


class S2ChebNet(SpatioSpectral):
    """Spatial message passing + Chebyshev filter (:class:`~densim.models.chebnet.ChebBlock`: ``K=3``)."""

    spectral_block = ChebBlock


class S2SpectralMLP(SpatioSpectral):
    """Spatial message passing + spectral MLP filter (:class:`~densim.models.spectral_mlp.SpectralMLPBlock`:
    ``num_modes=16``, ``filter_hidden=32``)."""

    spectral_block = SpectralMLPBlock


class S2NLSF(SpatioSpectral):
    """Spatial message passing + NLSF, eq. 6 (:class:`~densim.models.nlsf.NLSFBlock`: ``num_modes=16``,
    ``filter_hidden=64``, ``channel_mixing="diagonal"``, ``eps=1e-3``)."""

    spectral_block = NLSFBlock


class S2NormNLSF(SpatioSpectral):
    """Spatial message passing + norm-NLSF, eq. 7 (:class:`~densim.models.nlsf.NormNLSFBlock`: as
    :class:`S2NLSF` plus ``alpha=0.5``)."""

    spectral_block = NormNLSFBlock
