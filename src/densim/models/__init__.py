"""The learnable networks of the learned simulator, registered by key.

Every model maps a ``torch_geometric.data.Data``/``Batch`` of normalised features to a ``[num_nodes, out]``
tensor (see :class:`~densim.models.blocks.EncodeProcessDecode` for the fields read). Adding a model is one
file defining an :class:`~densim.models.blocks.EncodeProcessDecode` subclass plus one line in :data:`MODELS`;
the baselines ``frozen`` and ``linear_floor`` (:mod:`densim.models.baselines`) are registered alongside.

Examples
--------
>>> model = build_model("nlsf_norm", node_in=6, edge_in=4, out=2, hidden=32, num_modes=8)
>>> model.hyperparameters["alpha"]
0.5
"""

from __future__ import annotations

from typing import Any

from torch import nn

from densim.models.baselines import Frozen, LinearFloor
from densim.models.chebnet import ChebNet
from densim.models.nlsf import NLSF, NormNLSF
from densim.models.spatial import SpatialGNN
from densim.models.spatio_spectral import S2ChebNet, S2NLSF, S2NormNLSF, S2SpectralMLP
from densim.models.spectral_mlp import SpectralMLP

MODELS: dict[str, type[nn.Module]] = {
    "spatial": SpatialGNN,
    "chebnet": ChebNet,
    "spectral_mlp": SpectralMLP,
    "nlsf": NLSF,
    "nlsf_norm": NormNLSF,
    "s2_chebnet": S2ChebNet,
    "s2_mlp": S2SpectralMLP,
    "s2_nlsf": S2NLSF,
    "s2_nlsf_norm": S2NormNLSF,
    "frozen": Frozen,
    "linear_floor": LinearFloor,
}


class UnknownModelError(KeyError):
    """A model key that is not in :data:`MODELS`."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def build_model(key: str, node_in: int, edge_in: int, out: int, **hyperparameters: Any) -> nn.Module:
    """Instantiate the model registered under ``key``.

    Parameters
    ----------
    key : str
        One of :data:`MODELS`.
    node_in, edge_in, out : int
        Node feature, edge feature and output widths.
    **hyperparameters
        The model's hyperparameters (see its class); unknown names raise ``TypeError``, bad values
        ``ValueError``, both naming the argument.

    Returns
    -------
    nn.Module
        An :class:`~densim.models.blocks.EncodeProcessDecode` or a baseline (:mod:`densim.models.baselines`).

    Raises
    ------
    UnknownModelError
        (a ``KeyError``) naming ``key`` and listing the known keys.
    """
    if key not in MODELS:
        raise UnknownModelError(f"unknown model {key!r}; known models: {', '.join(MODELS)}")
    return MODELS[key](node_in, edge_in, out, **hyperparameters)


__all__ = ["MODELS", "UnknownModelError", "build_model"]
