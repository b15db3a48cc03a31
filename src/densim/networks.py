"""The networks stage: jammed packing -> spring network -> tuned Poisson ratio, per network of a dataset.

A dataset is ``networks`` networks made by one generator with targets spread evenly over ``nu_range``
(``numpy.linspace``). Network ``i`` starts from the packing drawn from ``SeedSequence([seed, i, attempt])``,
so datasets with the same seed tune the same packings, and everything is reproducible bit for bit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from densim.config import ConfigError, check_settings, setting, typed_config
from densim.elasticity import NotRigidError, floppy_linear_response, linear_response
from densim.io import network_to_dataset
from densim.springs import SpringNetwork
from densim.packing import contact_network, jammed_packing
from densim.tuning import MissedPath, TuningResult, noise_and_prune, optimise_node_positions, prune_to_target

log = logging.getLogger(__name__)

GENERATORS = ("node_opt", "bond_pru_opt", "noi_pru")
_MAX_PACKING_ATTEMPTS = 20


@dataclass(frozen=True)
class PackingConfig:
    """Jammed packing: ``nodes`` disks (half of diameter 1, half ``diameter_ratio``); the ``packing`` section."""

    nodes: int = setting("packing.nodes")
    packing_fraction: float = setting("packing.packing_fraction")
    diameter_ratio: float = setting("packing.diameter_ratio")
    force_tolerance: float = setting("packing.force_tolerance")

    def __post_init__(self):
        check_settings(self, "packing")


@dataclass(frozen=True)
class NodeOptConfig:
    """Settings of the node_opt generator (``datasets.<name>.node_opt``)."""

    learning_rate: float = setting("datasets.*.node_opt.learning_rate")
    max_steps: int = setting("datasets.*.node_opt.max_steps")
    min_length_ratio: float = setting("datasets.*.node_opt.min_length_ratio")
    min_angle_degrees: float = setting("datasets.*.node_opt.min_angle_degrees")

    def __post_init__(self):
        check_settings(self, "datasets.*.node_opt")


@dataclass(frozen=True)
class NoiPruConfig:
    """Settings of the noi_pru generator (``datasets.<name>.noi_pru``)."""

    noise: float = setting("datasets.*.noi_pru.noise")
    max_attempts: int = setting("datasets.*.noi_pru.max_attempts")
    min_coordination: float = setting("datasets.*.noi_pru.min_coordination")
    min_length_ratio: float = setting("datasets.*.noi_pru.min_length_ratio")

    def __post_init__(self):
        check_settings(self, "datasets.*.noi_pru")


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that shapes the networks of one dataset: its ``datasets.<name>`` section, plus the shared
    ``generation_seed`` (as ``seed``), ``stiffness`` and ``packing``."""

    name: str
    generator: str = field(metadata={"schema": "datasets.*.generator"})
    networks: int = setting("datasets.*.networks")
    nu_range: tuple[float, float] = setting("datasets.*.nu_range")
    tolerance: float = setting("datasets.*.tolerance")
    poisson_ratio: str = setting("datasets.*.poisson_ratio")
    seed: int = setting("generation_seed")
    stiffness: str = setting("stiffness")
    packing: PackingConfig = field(default_factory=PackingConfig)
    node_opt: NodeOptConfig = field(default_factory=NodeOptConfig)
    noi_pru: NoiPruConfig = field(default_factory=NoiPruConfig)

    def __post_init__(self):
        check_settings(self, f"datasets.{self.name}")
        if self.nu_range[0] > self.nu_range[1]:
            raise ConfigError(f"datasets.{self.name}.nu_range: must be [low, high] with low <= high")

    @classmethod
    def from_dict(cls, name: str, section: dict) -> DatasetConfig:
        """Build from a config section, naming any unknown key."""
        nested = {"packing": PackingConfig, "node_opt": NodeOptConfig, "noi_pru": NoiPruConfig}
        kwargs = {}
        for key, value in section.items():
            if key in nested and isinstance(value, dict):
                value = typed_config(nested[key], value, f"datasets.{name}.{key}")
            kwargs[key] = tuple(value) if key == "nu_range" else value
        return typed_config(cls, kwargs, f"datasets.{name}", name=name)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["nu_range"] = list(self.nu_range)
        return d

    def targets(self) -> np.ndarray:
        """Target Poisson ratio of every network, evenly spread over ``nu_range``."""
        return np.linspace(*self.nu_range, self.networks)

    def acceptance_interval(self, index: int) -> tuple[float, float]:
        """Interval a randomly tuned network must land in: its target +- half the target spacing."""
        half = 0.5 * (self.nu_range[1] - self.nu_range[0]) / max(self.networks - 1, 1)
        target = self.targets()[index]
        return target - max(half, self.tolerance), target + max(half, self.tolerance)


@dataclass(frozen=True)
class GeneratedNetwork:
    network: SpringNetwork
    diameters: np.ndarray
    target: float
    result: TuningResult
    packing_attempt: int
    tuning_attempt: int


def network_name(index: int) -> str:
    return f"{index:04d}"


def starting_network(config: DatasetConfig, index: int) -> tuple[SpringNetwork, np.ndarray, int]:
    """The rigid contact network of the first packing attempt for network ``index`` that yields one.

    Returns the network, the diameters of its nodes and the attempt number.
    """
    p = config.packing
    for attempt in range(_MAX_PACKING_ATTEMPTS):
        rng = np.random.default_rng([config.seed, index, attempt])
        packing = jammed_packing(p.nodes, p.packing_fraction, p.diameter_ratio, rng, p.force_tolerance)
        network, kept = contact_network(packing, config.stiffness)
        try:
            linear_response(network)
        except NotRigidError:
            log.info("network %s: packing attempt %d has a floppy contact network, drawing another", index, attempt)
            continue
        if network.num_nodes < 0.5 * p.nodes:
            continue
        return network, packing.diameters[kept], attempt
    raise RuntimeError(
        f"datasets.{config.name} network {network_name(index)}: no rigid packing in {_MAX_PACKING_ATTEMPTS} attempts; "
        "raise packing.packing_fraction above jamming (about 0.84)"
    )


def _where_paths_went(missed: list[MissedPath], interval: tuple[float, float]) -> str:
    """What NOI-PRU's missed paths say about the interval, and the remedy."""
    reached = [m for m in missed if np.isfinite(m.nu_min)]
    if not reached:
        return f"every path ended before pruning ({missed[-1].reason}): lower noi_pru.noise"
    low, high = min(m.nu_min for m in reached), max(m.nu_max for m in reached)
    if low <= interval[0] and interval[1] <= high:
        return (f"the paths' nu went through [{low:.4f}, {high:.4f}], stepping over the interval (single removals move nu by more "
                "than its width on small networks): widen nu_range or raise noi_pru.max_attempts")
    return f"the paths' nu went through [{low:.4f}, {high:.4f}]: move nu_range there or raise noi_pru.noise"


def generate_network(config: DatasetConfig, index: int) -> GeneratedNetwork:
    """Make network ``index`` of a dataset: packing, contact network, tuning."""
    if not 0 <= index < config.networks:
        raise ConfigError(f"datasets.{config.name}.networks: network {index} is outside 0..{config.networks - 1}")
    start, diameters, packing_attempt = starting_network(config, index)
    target = float(config.targets()[index])
    log.info("%s %s: %d nodes, %d bonds, Z = %.3f, target nu = %+.3f", config.name, network_name(index), start.num_nodes, start.num_bonds, start.mean_coordination(), target)
    tuning_attempt = 0
    if config.generator == "bond_pru_opt":
        result = prune_to_target(start, target, config.tolerance, config.poisson_ratio)
    elif config.generator == "node_opt":
        o = config.node_opt
        result = optimise_node_positions(
            start, target, config.tolerance, config.stiffness, config.poisson_ratio, o.learning_rate, o.max_steps, o.min_length_ratio, o.min_angle_degrees
        )
    else:
        interval = config.acceptance_interval(index)
        missed = []
        for tuning_attempt in range(config.noi_pru.max_attempts):
            rng = np.random.default_rng([config.seed, index, packing_attempt, tuning_attempt, 1])
            result = noise_and_prune(
                start, interval, rng, config.noi_pru.noise, config.stiffness, config.poisson_ratio, config.noi_pru.min_coordination, config.noi_pru.min_length_ratio
            )
            if not isinstance(result, MissedPath):
                break
            missed.append(result)
            log.info("%s %s: random path %d missed [%.4f, %.4f]: nu went through [%.4f, %.4f], ended by %s", config.name, network_name(index),
                     tuning_attempt, *interval, result.nu_min, result.nu_max, result.reason)
        else:
            raise RuntimeError(
                f"datasets.{config.name} network {network_name(index)}: no random path reached nu in "
                f"[{interval[0]:.3f}, {interval[1]:.3f}] in {config.noi_pru.max_attempts} attempts; {_where_paths_went(missed, interval)}"
            )
    log.info("%s %s: nu = %+.4f after %d steps", config.name, network_name(index), result.poisson, result.steps)
    return GeneratedNetwork(result.network, diameters, target, result, packing_attempt, tuning_attempt)


def network_dataset(config: DatasetConfig, index: int, generated: GeneratedNetwork, provenance: dict) -> xr.Dataset:
    """The network file's contents: geometry, moduli (recomputed from scratch) and metadata."""
    net = generated.network
    attrs = {
        "dataset": config.name,
        "network": network_name(index),
        "generator": config.generator,
        "poisson_ratio_definition": config.poisson_ratio,
        "seed": config.seed,
        "packing_attempt": generated.packing_attempt,
        "tuning_attempt": generated.tuning_attempt,
        "tuning_steps": generated.result.steps,
        "mean_coordination": net.mean_coordination(),
        **provenance,
    }
    own = {"diameter": (("node",), generated.diameters, {"description": "diameter of the packing disk the node came from"})}
    return _network_file(net, own, (config.poisson_ratio, f"the tuned Poisson ratio ({config.poisson_ratio})"),
                         (generated.target, "the generator's target"), attrs)


def imported_network(data, dataset: str, index: int, provenance: dict) -> xr.Dataset:
    """The network file's contents from a LAMMPS data file (:class:`densim.dumps.DataFile`; ``densim networks
    import``): its atoms (origin moved to the box corner, wrapped into the box), bonds and ``bond_style harmonic``
    coefficients (stiffness ``k = 2 K``, rest length ``r0``), the moduli by linear response; generator ``lammps``, no
    target, the tuned Poisson ratio being the uniaxial one (what a compression along x measures).

    Bonds are kept as the file has them, repeated pairs included (LAMMPS simulates each: two springs of one pair act
    as one of twice the stiffness). A network with floppy modes is data like any other (LAMMPS simulates it): its
    moduli come from the least-squares relaxation (:func:`densim.elasticity.floppy_linear_response`), and the file
    says so (``floppy_modes``, ``rigidity``). The data file's notes (a section comment read as LAMMPS reads it) are
    recorded in ``import_notes``.

    Raises
    ------
    ValueError
        If the data file's atoms have unequal masses (densim's node mass is one number).
    """
    if not np.all(data.masses == data.masses[0]):
        raise ValueError(f"atoms of masses {sorted(set(data.masses.tolist()))[:4]}: densim's nodes share one mass")
    positions = np.mod(data.positions - data.lo, data.box)
    net = SpringNetwork(positions=positions, box=data.box.astype(np.float64), bonds=data.bonds, rest_lengths=data.rest_lengths,
                        stiffness=data.stiffness)
    own = {"diameter": (("node",), np.full(net.num_nodes, np.nan), {"description": "unknown: the network was imported"}),
           "atom_id": (("node",), data.ids, {"description": "the node's atom id in the LAMMPS data file"})}
    pairs = len({tuple(pair) for pair in np.sort(data.bonds, axis=1).tolist()})
    attrs = {"dataset": dataset, "network": network_name(index), "generator": "lammps", "poisson_ratio_definition": "uniaxial_x",
             "seed": -1, "packing_attempt": -1, "tuning_attempt": -1, "tuning_steps": 0, "mean_coordination": net.mean_coordination(),
             "mass": float(data.masses[0]), "repeated_bonds": len(data.bonds) - pairs, "import_notes": json.dumps(list(data.notes)),
             **provenance}
    return _network_file(net, own, ("uniaxial_x", "C_xxyy / C_yyyy (an imported network has no tuned target)"),
                         (np.nan, "none: the network was imported"), attrs, floppy_allowed=True)


def _network_file(net: SpringNetwork, own: dict, poisson: tuple[str, str], target: tuple[float, str], attrs: dict,
                  floppy_allowed: bool = False) -> xr.Dataset:
    """A network file's contents: the network, its ``own`` variables, then its moduli by linear response (recomputed
    from scratch; of a network with floppy modes, where ``floppy_allowed``, by least squares), the Poisson ratio by
    ``poisson`` (definition, description) and the ``target`` (value, description)."""
    try:
        moduli, floppy, rigidity = linear_response(net), 0, "rigid"
    except NotRigidError as err:
        if not floppy_allowed:
            raise
        moduli, floppy = floppy_linear_response(net)
        rigidity = f"{err}: {floppy} floppy modes; moduli by least-squares relaxation (floppy modes take no energy)"
    attrs = {**attrs, "floppy_modes": floppy, "rigidity": rigidity}
    scalar = lambda value, description: ((), value, {"description": description})  # noqa: E731
    data_vars = {
        **own,
        "bulk_modulus": scalar(moduli.bulk, "linear-response bulk modulus B (energy per area)"),
        "shear_modulus": scalar(moduli.shear, "linear-response shear modulus G (energy per area)"),
        "poisson_ratio": scalar(moduli.poisson_ratio(poisson[0]), poisson[1]),
        "target_poisson_ratio": scalar(*target),
        "isotropic_poisson_ratio": scalar(moduli.poisson, "(B - G) / (B + G), the orientation average"),
        "uniaxial_poisson_ratio": scalar(moduli.poisson_ratio("uniaxial_x"), "C_xxyy / C_yyyy: axial strain along x, sigma_yy = 0"),
        "stiffness_matrix": (("probe", "probe_"), moduli.stiffness_matrix, {"description": "M_pq = e_p.K.e_q / V over unit probe strains"}),
    }
    ds = network_to_dataset(net, data_vars, attrs)
    return ds.assign_coords(probe=["xx", "yy", "xy"], probe_=["xx", "yy", "xy"])


MANIFEST_COLUMNS = (
    "network", "generator", "seed", "nodes", "bonds", "mean_coordination", "excess_coordination",
    "target_poisson_ratio", "poisson_ratio", "isotropic_poisson_ratio", "uniaxial_poisson_ratio", "bulk_modulus", "shear_modulus",
    "tuning_steps",
)


def manifest_row(ds: xr.Dataset) -> dict:
    """One manifest row from a network Dataset."""
    z = float(ds.attrs["mean_coordination"])
    return {
        "network": ds.attrs["network"],
        "generator": ds.attrs["generator"],
        "seed": int(ds.attrs["seed"]),
        "nodes": ds.sizes["node"],
        "bonds": ds.sizes["bond"],
        "mean_coordination": z,
        "excess_coordination": z - 4.0,
        "target_poisson_ratio": float(ds["target_poisson_ratio"]),
        "poisson_ratio": float(ds["poisson_ratio"]),
        "isotropic_poisson_ratio": float(ds["isotropic_poisson_ratio"]),
        "uniaxial_poisson_ratio": float(ds["uniaxial_poisson_ratio"]),
        "bulk_modulus": float(ds["bulk_modulus"]),
        "shear_modulus": float(ds["shear_modulus"]),
        "tuning_steps": int(ds.attrs["tuning_steps"]),
    }


def manifest(datasets: list[xr.Dataset]) -> pd.DataFrame:
    """The manifest table of a dataset, one row per network, sorted by network id."""
    return pd.DataFrame([manifest_row(ds) for ds in datasets], columns=list(MANIFEST_COLUMNS)).sort_values("network", ignore_index=True)
