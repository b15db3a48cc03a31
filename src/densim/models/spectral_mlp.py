r"""Spectral MLP filter: a frequency response learned as an MLP of the eigenvalue, on the first k modes."""

from __future__ import annotations

from torch import Tensor

from densim.models.blocks import (
    MLP,
    EncodeProcessDecode,
    GraphInputs,
    SpectralBlock,
    check_positive_int,
)


class SpectralMLPBlock(SpectralBlock):
    r"""Linear spectral filter with a per-channel frequency response :math:`g: \mathbb{R} \to \mathbb{R}^d`
    given by an MLP of the eigenvalue (study section II.2.2, eq. 4 and its multichannel form).

    .. math::

        F(\mathbf{H}) = \sum_{n=1}^{k} \mathbf{v}_n \mathbf{v}_n^\top \mathbf{H}\,
        \mathrm{diag}\big(g(\lambda_n)\big), \qquad
        \Delta(\mathbf{H}) = \sigma\big(F(\mathbf{H})\big) W + b

    computed per graph as ``synthesise(g(lambda) * project(H))``. The channel mixing :math:`W` follows the
    nonlinearity. :math:`\mathbf{v}_n \mathbf{v}_n^\top` is unchanged by :math:`\mathbf{v}_n \to
    -\mathbf{v}_n`, so the block is invariant to eigenvector sign flips; it is equivariant to node
    permutations that permute the eigenvector rows alike. With :math:`g \equiv 1`, :math:`F` is the orthogonal
    projection on the k modes. Padding modes (zero eigenvector columns) contribute nothing.

    Parameters
    ----------
    hidden : int
        Latent width d.
    mlp_layers : int
        Hidden layers of the response MLP :math:`g`.
    activation : str
        Nonlinearity of :math:`g` and :math:`\sigma`.
    num_modes : int, optional
        Number k of leading Laplacian modes used; the graph may carry more (default 16).
    filter_hidden : int, optional
        Hidden width of :math:`g` (default 32).

    Shapes
    ------
    input: node latents [|V|, d], ``eigvecs`` [|V|, >= k], ``eigvals`` [|G|, >= k]; output: node update [|V|, d].
    """

    def __init__(self, hidden: int, mlp_layers: int, activation: str, num_modes: int = 16,
                 filter_hidden: int = 32) -> None:
        super().__init__(hidden, activation)
        check_positive_int("num_modes", num_modes)
        check_positive_int("filter_hidden", filter_hidden)
        self.num_modes, self.filter_hidden = num_modes, filter_hidden
        self.response = MLP(1, filter_hidden, hidden, mlp_layers, activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.response.reset_parameters()

    def filter(self, h: Tensor, graph: GraphInputs) -> Tensor:
        _, eigvals = graph.leading_modes(self.num_modes)
        basis = graph.spectral_basis(self.num_modes)
        gains = self.response(eigvals.unsqueeze(-1))  # [G, k, d]
        return basis.synthesise(gains * basis.project(h))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(hidden={self.hidden}, num_modes={self.num_modes}, "
                f"filter_hidden={self.filter_hidden})")


class SpectralMLP(EncodeProcessDecode):
    r"""Encoder, ``num_layers`` residual spectral MLP filter blocks (:class:`SpectralMLPBlock`), decoder.

    .. math::

        \mathbf{H} \leftarrow \mathbf{H} + \sigma\Big(\sum_{n=1}^{k} \mathbf{v}_n \mathbf{v}_n^\top \mathbf{H}
        \,\mathrm{diag}\,g(\lambda_n)\Big) W + b

    Each block acts diagonally in the spectral domain: modes do not mix. Reads ``x``, ``eigvecs``, ``eigvals``.

    Parameters
    ----------
    node_in, edge_in, out, hidden=64, num_layers=4, mlp_layers=2, activation="relu"
        See :class:`~densim.models.blocks.EncodeProcessDecode`.
    num_modes : int, optional
        Leading Laplacian modes k (default 16).
    filter_hidden : int, optional
        Hidden width of the response MLP (default 32).

    Shapes
    ------
    input ``x`` [|V|, node_in], ``eigvecs`` [|V|, k], ``eigvals`` [|G|, k], ``batch`` [|V|]; output [|V|, out].
    """

    block = SpectralMLPBlock
