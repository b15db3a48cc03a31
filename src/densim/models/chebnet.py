r"""ChebNet: linear spectral filters that are polynomials of the Laplacian in the Chebyshev basis."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor
from torch_geometric.nn import ChebConv

from densim.models.blocks import EncodeProcessDecode, GraphInputs, SpectralBlock, check_positive_int


class ChebBlock(SpectralBlock):
    r"""Chebyshev polynomial filter block (Defferrard et al. 2016), through PyG's :class:`ChebConv`.

    .. math::

        F(\mathbf{H}) = \sum_{r=0}^{K-1} T_r(\hat{\mathbf{L}}) \mathbf{H} \Theta_r + b, \qquad
        \hat{\mathbf{L}} = \frac{2}{\lambda_{\max}} \mathbf{L}_{sym} - \mathbf{I}
        = -\mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}, \qquad
        \Delta(\mathbf{H}) = \sigma\big(F(\mathbf{H})\big) W + b'

    with :math:`T_r` the Chebyshev polynomials, the symmetric normalised Laplacian of the unweighted graph
    (study eq. 3) and :math:`\lambda_{\max} = 2`, its upper bound. :math:`F = Q(\mathbf{L})` is a
    multichannel polynomial filter, reaching ``K - 1`` hops. It needs no eigenvectors, so it is trivially
    invariant to their signs; it is equivariant to node permutations.

    Parameters
    ----------
    hidden : int
        Latent width d.
    mlp_layers : int
        Unused (the block has no MLP); accepted for the common block interface.
    activation : str
        Nonlinearity :math:`\sigma`.
    K : int, optional
        Chebyshev filter size, PyG's ``K``: polynomial degree ``K - 1`` (default 3).

    Shapes
    ------
    input: node latents [|V|, d], ``edge_index`` [2, |E|]; output: node update [|V|, d].
    """

    uses_spectrum: ClassVar[bool] = False

    def __init__(self, hidden: int, mlp_layers: int, activation: str, K: int = 3) -> None:
        super().__init__(hidden, activation)
        check_positive_int("K", K)
        self.K = K
        self.conv = ChebConv(hidden, hidden, K, normalization="sym")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.conv.reset_parameters()

    @property
    def hops(self) -> float:
        """A polynomial of degree K - 1 in the Laplacian reaches K - 1 bonds."""
        return float(self.K - 1)

    def filter(self, h: Tensor, graph: GraphInputs) -> Tensor:
        return self.conv(h, graph.edge_index, lambda_max=2.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hidden={self.hidden}, K={self.K})"


class ChebNet(EncodeProcessDecode):
    r"""Encoder, ``num_layers`` residual Chebyshev filter blocks (:class:`ChebBlock`), decoder.

    .. math::

        \mathbf{H} \leftarrow \mathbf{H} + \sigma\Big(\sum_{r=0}^{K-1} T_r(\hat{\mathbf{L}})\mathbf{H}\Theta_r
        + b\Big) W + b'

    Reads ``x`` and ``edge_index`` only (not ``edge_attr``, not the eigenvectors).

    Parameters
    ----------
    node_in, edge_in, out, hidden=64, num_layers=4, mlp_layers=2, activation="relu"
        See :class:`~densim.models.blocks.EncodeProcessDecode`.
    K : int, optional
        Chebyshev filter size (default 3).

    Shapes
    ------
    input ``x`` [|V|, node_in], ``edge_index`` [2, |E|]; output [|V|, out].
    """

    block = ChebBlock
