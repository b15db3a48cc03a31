"""The learnable networks, registered by key, and the simulator contract built on them.

Every model maps a ``torch_geometric.data.Data``/``Batch`` of normalised features to a ``[num_nodes, out]``
tensor (see :class:`~densim.models.blocks.EncodeProcessDecode` for the fields read), and names the simulator
family that wraps it in its ``simulator`` class attribute (:mod:`densim.simulator`). Adding a model is one
file defining the network class plus one line in :data:`MODELS`; the baselines ``frozen``,
``constant_velocity`` and ``linear_floor`` (:mod:`densim.models.baselines`) are registered alongside.

:func:`build_simulator` and :func:`load_simulator` are the one way training, rollouts and evaluation make a
simulator: the network's widths come from its family, its initial weights from the seed.

Examples
--------
>>> model = build_model("nlsf_norm", node_in=6, edge_in=4, out=2, hidden=32, num_modes=8)
>>> model.hyperparameters["alpha"]
0.5
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from densim.models.baselines import ConstantVelocity, Frozen, LinearDynamics, LinearFloor, ThermalTwin, _Baseline
from densim.models.chebnet import ChebNet
from densim.models.graphcon import GraphCON
from densim.models.igns import IGNS, IGNSTimeInvariant
from densim.models.nlsf import NLSF, NormNLSF
from densim.models.spatial import SpatialGNN
from densim.models.spatio_spectral import S2ChebNet, S2NLSF, S2NormNLSF, S2SpectralMLP
from densim.models.spectral_mlp import SpectralMLP
from densim.simulator import Simulator, Statistics

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
    "igns": IGNS,
    "igns_ti": IGNSTimeInvariant,
    "graphcon": GraphCON,
    "frozen": Frozen,
    "constant_velocity": ConstantVelocity,
    "linear_floor": LinearFloor,
    "linear_dynamics": LinearDynamics,
    "thermal_twin": ThermalTwin,
}


#: Models that are references, not learned simulators (:class:`densim.models.baselines`).
BASELINES: tuple[str, ...] = tuple(key for key, cls in MODELS.items() if issubclass(cls, _Baseline))
#: References that are not predictors (they read the truth's own thermal twin): reported beside every model, never a
#: winner of a table nor a baseline a model must beat.
ORACLES: tuple[str, ...] = ("thermal_twin",)


def model_defaults(model: str) -> dict[str, Any]:
    """The constructor defaults of a registered model (its hyperparameters where the config leaves them out)."""
    import inspect

    return {name: p.default for name, p in inspect.signature(MODELS[model].__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


class UnknownModelError(KeyError):
    """A model key that is not in :data:`MODELS`."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


#: Separates a model key from the settings of a variant: ``igns@warmup=5@loss_steps=20``.
VARIANT_SEPARATOR = "@"


def model_variant(key: str) -> tuple[str, dict[str, Any]]:
    """The registered model and the settings of a model variant key ``MODEL@KEY=VALUE@...``.

    A variant is a registered model with some hyperparameters or per-model training settings changed (values are
    read as YAML scalars); a plain model key is a variant without settings.

    Examples
    --------
    >>> model_variant("igns@warmup=5@loss_steps=window")
    ('igns', {'warmup': 5, 'loss_steps': 'window'})

    Raises
    ------
    UnknownModelError
        For an unknown model or a setting that is not ``KEY=VALUE``.
    """
    base, *parts = key.split(VARIANT_SEPARATOR)
    if base not in MODELS:
        raise UnknownModelError(f"unknown model {base!r}; known models: {', '.join(MODELS)}")
    settings = {}
    for part in parts:
        name, equals, value = part.partition("=")
        if not (equals and name and value):
            raise UnknownModelError(f"model variant {key!r}: {part!r} is not KEY=VALUE")
        settings[name] = yaml.safe_load(value)
    return base, settings


def variant_key(model: str, settings: dict[str, Any]) -> str:
    """The key of a variant of ``model`` (the inverse of :func:`model_variant`; settings in sorted order)."""
    return VARIANT_SEPARATOR.join([model, *(f"{name}={value}" for name, value in sorted(settings.items()))])


def training_defaults(model: str) -> dict[str, Any]:
    """The training settings a registered model brings (its class's ``training_defaults``; IGNS: the multi-step loss)."""
    return dict(getattr(MODELS[model], "training_defaults", {}))


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


def build_simulator(model: str, history: int, statistics: Statistics, *, seed: int, hyperparameters: dict | None = None,
                    residual: bool = True, noise: float = 0.0) -> Simulator:
    """The simulator of a registered model, its initial weights drawn from ``seed``.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`; its class names the simulator family.
    history : int
        Past velocities per node feature.
    statistics : Statistics
        Normalisation statistics of the train split.
    seed : int
        Seeds the initial weights (in a forked RNG: the caller's random state is left alone).
    hyperparameters : dict, optional
        The network's constructor arguments.
    residual, noise
        Settings of the family (see :class:`~densim.simulator.Simulator`).

    Raises
    ------
    UnknownModelError, TypeError, ValueError
        For an unknown model key, an unknown hyperparameter or a bad value, naming it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        family, network = _family_and_network(model, history, hyperparameters or {})
    return family(network, history, statistics, residual=residual, noise=noise)


def _family_and_network(model: str, history: int, hyperparameters: dict) -> tuple[type[Simulator], nn.Module]:
    """A model's simulator family and its network, at the widths the family gives for ``history``."""
    family = MODELS[model].simulator if model in MODELS else Simulator  # build_model names an unknown key
    return family, build_model(model, **family.widths(history), **hyperparameters)


def check_model(model: str, hyperparameters: dict, history: int = 1) -> None:
    """Build a model's network once, so that a bad key, hyperparameter or history fails before any data is read.

    Raises
    ------
    UnknownModelError, TypeError, ValueError
        Naming the model key, the hyperparameter or the width at fault.
    """
    _family_and_network(model, history, hyperparameters)


def load_simulator(path: str | Path, device: str | torch.device = "cpu") -> tuple[Simulator, dict]:
    """Rebuild a simulator from a self-contained checkpoint, and return it with the checkpoint.

    The checkpoint is read as plain data (``weights_only``; :func:`densim.io.read_checkpoint`); its model key,
    history, hyperparameters and family settings rebuild the simulator, whose weights and normalisation
    buffers then come from the file.
    """
    from densim.io import read_checkpoint

    checkpoint = read_checkpoint(path, device)
    run = checkpoint["run"]
    simulator = build_simulator(model_variant(run["model"])[0], run["history"], Statistics.from_state_dict(checkpoint["simulator"]), seed=run["seed"],
                                hyperparameters=run["hyperparameters"], **run["family"])
    simulator.load_state_dict(checkpoint["simulator"])
    return simulator.to(device), checkpoint


def parameters_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers in order: a fingerprint of its weights."""
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


__all__ = ["MODELS", "ORACLES", "VARIANT_SEPARATOR", "UnknownModelError", "build_model", "build_simulator", "check_model", "load_simulator",
           "model_variant", "parameters_digest", "training_defaults", "variant_key"]
