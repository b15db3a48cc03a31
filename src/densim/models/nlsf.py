r"""Nonlinear spectral filters (NLSF, Lin, Talmon and Levie 2024): the study's eq. 6 and its normalised
variant eq. 7, which mix the spectral coefficients of all k modes nonlinearly and stay invariant to the
signs of the eigenvectors.

References
----------
.. [1] Y.-W. E. Lin, R. Talmon, R. Levie, "Equivariant machine learning on graphs with nonlinear spectral
   filters", NeurIPS 2024, https://arxiv.org/abs/2406.01249.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from densim.models.blocks import (
    MLP,
    EncodeProcessDecode,
    GraphInputs,
    SpectralBlock,
    check_choice,
    check_open_unit,
    check_positive_int,
)

CHANNEL_MIXINGS = ("diagonal", "full")


class NLSFBlock(SpectralBlock):
    r"""Nonlinear spectral filter with channelwise analysis, study eq. 6 ([1]_), on the first k modes.

    .. math::

        \mathbf{c}_n = \mathbf{v}_n^\top \mathbf{H} \in \mathbb{R}^d, \qquad
        \Psi(\mathbf{H}) = \sum_{n=1}^{k} \Big( (\mathbf{v}_n \mathbf{v}_n^\top \mathbf{H})
        \,./\,(|\mathbf{c}_n| + \epsilon) \Big)\, \psi_n\big(|\mathbf{c}_m|\big)_{m=1}^{k},
        \qquad \Delta(\mathbf{H}) = \sigma\big(\Psi(\mathbf{H})\big) W + b

    Analysis: the absolute values :math:`|\mathbf{c}_m|` (per mode and channel, a :math:`k \times d` matrix per
    graph) are flattened and fed to one MLP :math:`\psi` whose output holds, for every mode n,
    :math:`\psi_n \in \mathbb{R}^{d \times d}` (``channel_mixing="full"``, eq. 6 as written) or
    :math:`\psi_n = \mathrm{diag}(\mathbf{g}_n)`, :math:`\mathbf{g}_n \in \mathbb{R}^d`
    (``channel_mixing="diagonal"``, default: k d instead of k d² outputs; the block's mixing :math:`W` then
    mixes channels). Synthesis: since :math:`\mathbf{v}_n\mathbf{v}_n^\top\mathbf{H} = \mathbf{v}_n
    \mathbf{c}_n^\top`, mode n contributes :math:`\mathbf{v}_n \big(\mathbf{c}_n / (|\mathbf{c}_n| +
    \epsilon)\big)^\top \psi_n`, computed per graph as ``synthesise(...)``. The output lies in the span of the
    k modes; the model's residual connection carries the rest.

    Sign invariance: :math:`\mathbf{v}_n \to -\mathbf{v}_n` sends :math:`\mathbf{c}_n \to -\mathbf{c}_n`,
    leaving :math:`|\mathbf{c}_n|` (the input of :math:`\psi`) and :math:`\mathbf{v}_n\mathbf{c}_n^\top` (the
    synthesis) unchanged. Permutation equivariance: permuting the nodes and the eigenvector rows alike leaves
    every :math:`\mathbf{c}_n` unchanged and permutes the rows of :math:`\mathbf{v}_n`, hence of the output.
    Modes are indexed by their position in ascending eigenvalue order (the index-based NLSF of [1]_); for a
    repeated eigenvalue the result is sign- but not rotation-invariant within the eigenspace, as the study
    assumes multiplicity one. Padding modes (zero eigenvector columns) give zero coefficients and contribute
    nothing.

    Parameters
    ----------
    hidden : int
        Latent width d (also the output width d' of :math:`\Psi`).
    mlp_layers : int
        Hidden layers of :math:`\psi`.
    activation : str
        Nonlinearity of :math:`\psi` and :math:`\sigma`.
    num_modes : int, optional
        Number k of leading Laplacian modes (default 16).
    filter_hidden : int, optional
        Hidden width of :math:`\psi` (default 64).
    channel_mixing : str, optional
        ``"diagonal"`` (default) or ``"full"``: the form of :math:`\psi_n`, see above.
    eps : float, optional
        :math:`\epsilon` in (0, 1), stabilising the division (default 1e-3).

    Shapes
    ------
    input: node latents [|V|, d], ``eigvecs`` [|V|, >= k]; output: node update [|V|, d]. :math:`\psi` maps
    [|G|, k d] to [|G|, k d] (diagonal) or [|G|, k d d] (full).
    """

    #: Width of the analysis of one mode: d (channelwise absolute values) or 1 (a norm over channels).
    channelwise: ClassVar[bool] = True

    def __init__(self, hidden: int, mlp_layers: int, activation: str, num_modes: int = 16,
                 filter_hidden: int = 64, channel_mixing: str = "diagonal", eps: float = 1e-3) -> None:
        super().__init__(hidden, activation)
        check_positive_int("num_modes", num_modes)
        check_positive_int("filter_hidden", filter_hidden)
        check_choice("channel_mixing", channel_mixing, CHANNEL_MIXINGS)
        check_open_unit("eps", eps)
        self.num_modes, self.filter_hidden = num_modes, filter_hidden
        self.channel_mixing, self.eps = channel_mixing, eps
        analysis_width = num_modes * (hidden if self.channelwise else 1)
        weights_per_mode = hidden if channel_mixing == "diagonal" else hidden * hidden
        self.psi = MLP(analysis_width, filter_hidden, num_modes * weights_per_mode, mlp_layers, activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.psi.reset_parameters()

    def analysis(self, coeffs: Tensor) -> Tensor:
        r"""Sign-invariant magnitudes :math:`|\mathbf{c}_n|`: [G, k, d] -> [G, k, d]."""
        return coeffs.abs()

    def directions(self, coeffs: Tensor) -> Tensor:
        r"""Sign-carrying normalised coefficients :math:`\mathbf{c}_n ./ (|\mathbf{c}_n| + \epsilon)`: [G, k, d]."""
        return coeffs / (coeffs.abs() + self.eps)

    def filter(self, h: Tensor, graph: GraphInputs) -> Tensor:
        basis = graph.spectral_basis(self.num_modes)
        coeffs = basis.project(h)  # [G, k, d]
        num_graphs, num_modes, width = coeffs.shape
        weights = self.psi(self.analysis(coeffs).flatten(1))
        directions = self.directions(coeffs)
        if self.channel_mixing == "diagonal":
            mixed = directions * weights.view(num_graphs, num_modes, width)
        else:
            mixed = torch.einsum("gkc,gkcf->gkf", directions, weights.view(num_graphs, num_modes, width, width))
        return basis.synthesise(mixed)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(hidden={self.hidden}, num_modes={self.num_modes}, "
                f"filter_hidden={self.filter_hidden}, channel_mixing={self.channel_mixing!r}, eps={self.eps})")


def _safe_power(squared: Tensor, exponent: float) -> Tensor:
    """``squared ** exponent`` with value and gradient 0 where ``squared == 0`` (padding modes, zero signals)."""
    positive = squared > 0
    return torch.where(positive, torch.where(positive, squared, torch.ones_like(squared)) ** exponent, 0.0)


class NormNLSFBlock(NLSFBlock):
    r"""Nonlinear spectral filter normalised over channels, study eq. 7.

    .. math::

        \Psi(\mathbf{H}) = \sum_{n=1}^{k} \frac{\mathbf{v}_n \mathbf{v}_n^\top \mathbf{H}}
        {\|\mathbf{v}_n^\top \mathbf{H}\|_{\mathbb{R}^d}^{\alpha} + \epsilon}\,
        \psi_n\big(\|\mathbf{v}_m^\top \mathbf{H}\|_{\mathbb{R}^d}\big)_{m=1}^{k}, \qquad
        \Delta(\mathbf{H}) = \sigma\big(\Psi(\mathbf{H})\big) W + b

    As :class:`NLSFBlock` except that the analysis is the Euclidean norm of each mode's coefficient vector over
    the d channels, so :math:`\psi` reads k numbers per graph, and the synthesis divides by that norm to the
    power :math:`\alpha`: mode n contributes :math:`\mathbf{v}_n \mathbf{c}_n^\top / (\|\mathbf{c}_n\|^\alpha
    + \epsilon)\, \psi_n`, a vector of length about :math:`\|\mathbf{c}_n\|^{1-\alpha}` along
    :math:`\mathbf{c}_n`. Sign invariance and permutation equivariance hold for the same reasons
    (:math:`\|-\mathbf{c}_n\| = \|\mathbf{c}_n\|`). Norms of zero coefficient vectors (padding modes) have
    zero gradient.

    Parameters
    ----------
    hidden, mlp_layers, activation, num_modes=16, filter_hidden=64, channel_mixing="diagonal"
        As :class:`NLSFBlock`.
    alpha : float, optional
        Exponent :math:`\alpha` in (0, 1) of the norm in the denominator (default 0.5).
    eps : float, optional
        :math:`\epsilon` in (0, 1) (default 1e-3).

    Shapes
    ------
    input: node latents [|V|, d], ``eigvecs`` [|V|, >= k]; output: node update [|V|, d]. :math:`\psi` maps
    [|G|, k] to [|G|, k d] (diagonal) or [|G|, k d d] (full).
    """

    channelwise: ClassVar[bool] = False

    def __init__(self, hidden: int, mlp_layers: int, activation: str, num_modes: int = 16,
                 filter_hidden: int = 64, channel_mixing: str = "diagonal", alpha: float = 0.5,
                 eps: float = 1e-3) -> None:
        check_open_unit("alpha", alpha)
        super().__init__(hidden, mlp_layers, activation, num_modes, filter_hidden, channel_mixing, eps)
        self.alpha = alpha
        self.reset_parameters()

    def analysis(self, coeffs: Tensor) -> Tensor:
        r"""Norms over channels :math:`\|\mathbf{c}_n\|`: [G, k, d] -> [G, k]."""
        return _safe_power(coeffs.square().sum(-1), 0.5)

    def directions(self, coeffs: Tensor) -> Tensor:
        r""":math:`\mathbf{c}_n / (\|\mathbf{c}_n\|^\alpha + \epsilon)`: [G, k, d]."""
        return coeffs / (_safe_power(coeffs.square().sum(-1, keepdim=True), self.alpha / 2) + self.eps)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(hidden={self.hidden}, num_modes={self.num_modes}, "
                f"filter_hidden={self.filter_hidden}, channel_mixing={self.channel_mixing!r}, alpha={self.alpha}, "
                f"eps={self.eps})")


class NLSF(EncodeProcessDecode):
    r"""Encoder, ``num_layers`` residual NLSF blocks (:class:`NLSFBlock`, study eq. 6), decoder.

    .. math::

        \mathbf{H} \leftarrow \mathbf{H} + \sigma\big(\Psi(\mathbf{H})\big) W + b

    Reads ``x`` and ``eigvecs`` (not the eigenvalues: modes are indexed by position, as in eq. 6).

    Parameters
    ----------
    node_in, edge_in, out, hidden=64, num_layers=4, mlp_layers=2, activation="relu"
        See :class:`~densim.models.blocks.EncodeProcessDecode`.
    num_modes=16, filter_hidden=64, channel_mixing="diagonal", eps=1e-3
        See :class:`NLSFBlock`.

    Shapes
    ------
    input ``x`` [|V|, node_in], ``eigvecs`` [|V|, k], ``eigvals`` [|G|, k], ``batch`` [|V|]; output [|V|, out].
    """

    block = NLSFBlock


class NormNLSF(EncodeProcessDecode):
    r"""Encoder, ``num_layers`` residual norm-NLSF blocks (:class:`NormNLSFBlock`, study eq. 7), decoder.

    .. math::

        \mathbf{H} \leftarrow \mathbf{H} + \sigma\big(\Psi(\mathbf{H})\big) W + b

    Parameters
    ----------
    node_in, edge_in, out, hidden=64, num_layers=4, mlp_layers=2, activation="relu"
        See :class:`~densim.models.blocks.EncodeProcessDecode`.
    num_modes=16, filter_hidden=64, channel_mixing="diagonal", alpha=0.5, eps=1e-3
        See :class:`NormNLSFBlock`.

    Shapes
    ------
    input ``x`` [|V|, node_in], ``eigvecs`` [|V|, k], ``eigvals`` [|G|, k], ``batch`` [|V|]; output [|V|, out].
    """

    block = NormNLSFBlock
