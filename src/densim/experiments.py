"""What a whole configuration asks for: its datasets and experiment grids, what each model key resolves to, and the
checks a schema cannot express.

The workflow (``workflow/rules/common.smk``) and ``densim cost`` both resolve the configuration with
:func:`resolve_config` (schema check and defaults, every registered model unless the config names some, then
:func:`check_config`), so that every bad value is named, with its key and cause, before any job runs; the grids the
workflow expands come from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from densim.config import ConfigError, check_value, schema_node, validated
from densim.dumps import paired_files
from densim.evaluation import evaluation_config
from densim.models import MODELS, ORACLES
from densim.networks import DatasetConfig
from densim.splits import SplitFractions
from densim.training import STATISTICS_KEYS, TrainingConfig, training_config
from densim.protocols import PROTOCOLS, md_settings


def generated_datasets(config: dict) -> list[str]:
    """Datasets made by a generator."""
    return [name for name, section in config["datasets"].items() if "generator" in section]


def variant_datasets(config: dict) -> list[str]:
    """Regime variants: datasets that share a generated dataset's networks (and spectra) with their own trajectories."""
    return [name for name, section in config["datasets"].items() if "variant_of" in section]


def imported_datasets(config: dict) -> list[str]:
    """Datasets a user brings: LAMMPS dumps and data files (``source: lammps``), imported rather than simulated."""
    return [name for name, section in config["datasets"].items() if "source" in section]


def simulated_datasets(config: dict) -> list[str]:
    """Datasets with trajectories of their own: the generated ones, their variants and the imported ones, in the
    datasets section's order."""
    return [name for name, section in config["datasets"].items() if {"generator", "variant_of", "source"} & set(section)]


def network_source(config: dict, dataset: str) -> str:
    """The dataset whose networks a dataset's trajectories use: its own, or a variant's ``variant_of``."""
    return config["datasets"][dataset].get("variant_of", dataset)


def imported_files(config: dict, dataset: str) -> list[tuple[str, str]]:
    """The (dump, data file) of each network of an imported dataset (:func:`densim.dumps.paired_files` of its ``dumps``
    and ``data`` glob patterns).

    Raises
    ------
    ConfigError
        Naming the key: a missing pattern, a pattern that matches nothing, or data files that neither match the dumps
        one for one nor are a single file.
    """
    section = config["datasets"][dataset]
    for key in ("dumps", "data"):
        if key not in section:
            raise ConfigError(f"datasets.{dataset}.{key}: required with source: {section['source']} (a glob pattern of files)")
    try:
        return paired_files(section["dumps"], section["data"], section.get("exclude", []))
    except ValueError as err:
        raise ConfigError(f"datasets.{dataset}.{err}") from None


def network_count(config: dict, dataset: str) -> int:
    """Networks of a generated or imported dataset, or of a variant (its source's)."""
    source = network_source(config, dataset)
    if "source" in config["datasets"][source]:
        return len(imported_files(config, source))
    return config["datasets"][source]["networks"]


def dataset_protocol(config: dict, dataset: str) -> str:
    """The trajectory protocol of a dataset (a union's: its members')."""
    section = config["datasets"][dataset]
    if "union" in section:
        section = config["datasets"][section["union"][0]]
    return section.get("protocol", "compression")


#: Keys of the ``trajectories`` section that only the trajectories summary reads, kept out of every run's settings.
SUMMARY_KEYS = ("small_strain",)
#: Keys of the ``trajectories`` section that describe the files of an imported dataset, kept out of densim's own runs.
FILE_KEYS = ("units",)


def _run_keys(section: dict) -> dict:
    """A ``trajectories`` section less :data:`SUMMARY_KEYS` and :data:`FILE_KEYS`: the settings a LAMMPS run takes."""
    return {key: value for key, value in section.items() if key not in SUMMARY_KEYS + FILE_KEYS}


def trajectory_section(config: dict, dataset: str) -> dict:
    """The ``trajectories`` section a dataset's runs use: the shared section with the dataset's own ``trajectories``
    keys on top, less the summary's keys (:data:`SUMMARY_KEYS`), and a protocol's own subsection (``impact``) only
    for datasets of that protocol (so editing it reruns those alone)."""
    own = config["datasets"][dataset].get("trajectories", {})
    section = _run_keys({**config["trajectories"], **own})
    if dataset in imported_datasets(config):
        section.update({key: {**config["trajectories"], **own}[key] for key in FILE_KEYS})
    mine = PROTOCOLS[dataset_protocol(config, dataset)].subsection
    for subsection in {protocol.subsection for protocol in PROTOCOLS.values()} - {None}:
        if subsection != mine:
            section.pop(subsection, None)
        elif subsection in own:
            section[subsection] = {**config["trajectories"].get(subsection, {}), **own[subsection]}
    return section


def training_section(config: dict, dataset: str) -> dict:
    """The ``training`` section a dataset's statistics and models use: the shared one with the dataset's own
    ``training`` keys on top (a union's come from its first member)."""
    section = config["datasets"][dataset]
    own = config["datasets"][section["union"][0]].get("training", {}) if "union" in section else section.get("training", {})
    return {**config["training"], **own}


def union_datasets(config: dict) -> list[str]:
    """Datasets that are unions of generated ones (made by reference, never regenerated)."""
    return [name for name, section in config["datasets"].items() if "union" in section]


def network_spec(config: dict, dataset: str) -> dict:
    """The resolved spec of a generated dataset's networks: its section (less the trajectory protocol) plus the shared
    generation settings."""
    section = config["datasets"][network_source(config, dataset)]
    shared = {"seed": config["generation_seed"], "stiffness": config["stiffness"], "packing": {**config["packing"], **section.get("packing", {})}}
    return {**{key: value for key, value in section.items() if key not in ("protocol", "trajectories", "training")}, **shared}


def dataset_nodes(config: dict, dataset: str) -> int:
    """Disks per packing of a dataset's networks (of a union's first member; imported datasets: the packing section's,
    an estimate for pricing only)."""
    return network_spec(config, config["datasets"][dataset].get("union", [dataset])[0])["packing"]["nodes"]


def igns_grid(config: dict) -> list[dict]:
    """The IGNS ablation's variants (:func:`ablation_grid`), empty when it is off."""
    grid = config["experiments"]["igns_ablation"]
    if not grid["datasets"]:
        return []
    return ablation_grid(grid["models"], {"warmup": grid["warmup"], "loss_steps": grid["loss_steps"]}, config["models"], config["training"])


def evaluation_grids(config: dict) -> dict[str, list[tuple[str, str, int, int]]]:
    """The runs (dataset, model key, history, seed) each experiment trains and evaluates: ``main`` (every model of
    ``experiments.models``, or every registered one, on every dataset), ``history`` (the history ablation) and
    ``igns_ablation`` (its variants; empty when it is off)."""
    experiments, seeds = config["experiments"], config["seeds"]

    def grid(datasets, models, histories):
        return [(d, m, h, s) for d in datasets for m in models if m not in ORACLES or twinned(config, d) for h in histories for s in seeds]

    ablation, igns = experiments["history_ablation"], experiments["igns_ablation"]
    return {
        "main": grid(experiments.get("datasets", list(config["datasets"])), experiments["models"], experiments["histories"]),
        "history": grid(ablation["datasets"], ablation["models"], ablation["histories"]),
        "igns_ablation": grid(igns["datasets"], list(dict.fromkeys(row["key"] for row in igns_grid(config))), experiments["histories"]),
    }


def twinned(config: dict, dataset: str) -> bool:
    """Whether every trajectory of a dataset has a thermal twin (:func:`densim.trajectories.thermal_twin`): densim
    simulated them (none imported) at a temperature above 0. Only such datasets evaluate the oracles
    (:data:`densim.models.ORACLES`)."""
    members = config["datasets"][dataset].get("union", [dataset])
    return all(member not in imported_datasets(config) and md_settings(_run_keys(trajectory_section(config, member))).temperature > 0
               for member in members)


def run_datasets(config: dict) -> list[str]:
    """The datasets some experiment grid trains on, in the datasets section's order."""
    used = {run[0] for grid in evaluation_grids(config).values() for run in grid}
    return [name for name in config["datasets"] if name in used]


def run_unions(config: dict) -> list[str]:
    """The union datasets some experiment grid trains on."""
    return [name for name in run_datasets(config) if name in union_datasets(config)]


def built_datasets(config: dict) -> list[str]:
    """The datasets whose trajectories a run simulates: those it trains on, a union's members in its place."""
    used = {member for name in run_datasets(config) for member in config["datasets"][name].get("union", [name])}
    return [name for name in simulated_datasets(config) if name in used]


def network_datasets(config: dict) -> list[str]:
    """The generated and imported datasets whose networks (and spectra) a run builds: those of :func:`built_datasets`."""
    used = {network_source(config, name) for name in built_datasets(config)}
    return [name for name in [*generated_datasets(config), *imported_datasets(config)] if name in used]


def resolve_config(config: dict) -> dict:
    """A layered configuration (``config.yaml``, then presets) made ready to use, in place: checked against the schema
    with its defaults filled in (:func:`densim.config.validated`), ``experiments.models`` set to every registered
    model unless the config names some, then checked for what a schema cannot express (:func:`check_config`).

    Raises
    ------
    ConfigError
        Naming the first bad key and its cause.
    """
    validated(config)
    config["experiments"].setdefault("models", list(MODELS))
    try:
        check_config(config)
    except (TypeError, KeyError) as err:
        raise ConfigError(str(err)) from None
    return config


def check_config(config: dict) -> None:
    """Check a schema-validated configuration (defaults filled in) for what its schema cannot express.

    Every generated dataset's settings, unions of known datasets sharing one protocol, the trajectory, training and
    evaluation sections, every model and variant of every grid at each of its histories (hyperparameters, per-model
    training settings, loss windows within the horizon), grid datasets that exist, split fractions.

    Raises
    ------
    ConfigError
        Naming the key and the cause.
    """
    experiments = config["experiments"]
    generated, simulated, imported = generated_datasets(config), simulated_datasets(config), imported_datasets(config)
    for name in generated:
        DatasetConfig.from_dict(name, network_spec(config, name))
    for name, section in config["datasets"].items():
        if section.get("packing") and name not in generated:
            raise ConfigError(f"datasets.{name}.packing: only a dataset with a generator makes packings (a variant or union "
                              "uses its source's networks)")
    for name in imported:
        imported_files(config, name)
        if dataset_protocol(config, name) != "compression":
            raise ConfigError(f"datasets.{name}.protocol: imported trajectories are compressions along x")
    for name in variant_datasets(config):
        source = config["datasets"][name]["variant_of"]
        if source not in generated:
            raise ConfigError(f"datasets.{name}.variant_of: {source!r} is not a generated dataset (one with a generator)")
    for name in union_datasets(config):
        members = config["datasets"][name]["union"]
        unknown = [member for member in members if member not in simulated]
        if unknown:
            raise ConfigError(f"datasets.{name}.union: {unknown} are not generated or imported datasets or variants")
        if len({dataset_protocol(config, member) for member in members}) > 1:
            raise ConfigError(f"datasets.{name}.union: its members' trajectories must share one protocol")
    shared = _run_keys(config["trajectories"])
    md_settings(shared)
    for protocol in PROTOCOLS.values():
        protocol.settings(shared)
    for name in simulated:
        own = config["datasets"][name].get("trajectories", {})
        unknown = [key for key in own if key not in schema_node("trajectories")["properties"]]
        if unknown:
            raise ConfigError(f"datasets.{name}.trajectories.{unknown[0]}: not a key of the trajectories section")
        shared = [key for key in own if key in SUMMARY_KEYS]
        if shared:
            raise ConfigError(f"datasets.{name}.trajectories.{shared[0]}: a setting of the whole trajectories summary; set trajectories.{shared[0]}")
        units = own.get("units", config["trajectories"]["units"])
        if name not in imported and units != "lj":
            key = f"datasets.{name}.trajectories.units" if "units" in own else "trajectories.units"
            raise ConfigError(f"{key}: {units!r} for dataset {name}, whose runs are densim's own (lj units, in t0); units "
                              "describe the files of a source: lammps dataset")
        try:
            md_settings(_run_keys(trajectory_section(config, name)))
            PROTOCOLS[dataset_protocol(config, name)].settings(trajectory_section(config, name))
        except ConfigError as err:
            raise ConfigError(f"datasets.{name}.{err}") from None
    training_config(config["training"])
    check_models(experiments["models"], config["models"], config["training"], experiments["histories"])
    ablation = experiments["history_ablation"]
    check_models(ablation["models"], config["models"], config["training"], ablation["histories"], key="experiments.history_ablation.models")
    check_models(list(dict.fromkeys(row["key"] for row in igns_grid(config))), config["models"], config["training"],
                 experiments["histories"], key="experiments.igns_ablation.models")
    for key, datasets in [("datasets", experiments.get("datasets", []))] + [
            (f"{grid}.datasets", experiments[grid]["datasets"]) for grid in ("history_ablation", "igns_ablation")]:
        unknown = [dataset for dataset in datasets if dataset not in config["datasets"]]
        if unknown:
            raise ConfigError(f"experiments.{key}: {unknown} are not datasets of the datasets section")
    evaluation = evaluation_config(config["evaluation"])
    histories = experiments["histories"] + ablation["histories"]
    if evaluation.start_frame is not None and evaluation.start_frame < max(histories):
        raise ConfigError(f"evaluation.start_frame: frame {evaluation.start_frame} leaves too few input frames for history {max(histories)}")
    try:
        SplitFractions(**config["splits"])
    except TypeError as err:
        raise ConfigError(f"splits: {err}") from None


@dataclass(frozen=True)
class ModelSetup:
    """What one model key trains: its registered model, hyperparameters and training settings."""

    key: str
    model: str
    hyperparameters: dict
    training: TrainingConfig


def model_setup(key: str, models: dict, training: dict) -> ModelSetup:
    """Resolve a model key or variant (``MODEL@KEY=VALUE@...``) against the ``models`` and ``training`` sections.

    Hyperparameters: ``models.<model>``, then the variant's settings that are not training keys. Training: the
    ``training`` section, then the model's :func:`~densim.models.training_defaults`, then
    ``training.overrides.<model>``, then the variant's training keys.

    Raises
    ------
    ConfigError
        Naming ``training.overrides.<model>.<key>`` or the variant for a bad or shared training key.
    UnknownModelError
        For an unknown model or a malformed variant.
    """
    from densim.models import model_variant, training_defaults

    model, settings = model_variant(key)
    names = {field.name for field in fields(TrainingConfig)}
    fixed = set(STATISTICS_KEYS)  # shared with the statistics of the dataset
    layers = [(f"training.overrides.{model}.", training.get("overrides", {}).get(model, {})),
              (f"model variant {key}, setting ", {name: value for name, value in settings.items() if name in names})]
    resolved = {**{name: value for name, value in training.items() if name != "overrides"}, **training_defaults(model)}
    for where, layer in layers:
        for name, value in layer.items():
            if name not in names or name in fixed:
                raise ConfigError(f"{where}{name}: not a training key of one model (all are but {', '.join(sorted(fixed))} and overrides)")
            check_value(value, f"training.{name}", f"{where}{name}")
        resolved.update(layer)
    hyperparameters = {**models.get(model, {}), **{name: value for name, value in settings.items() if name not in names}}
    return ModelSetup(key, model, hyperparameters, training_config(resolved))


def check_models(models: list[str], models_section: dict, training_section: dict, histories: list[int],
                 key: str = "experiments.models") -> None:
    """Resolve and build every model of an experiment once at each history, so a bad key or value fails before any job.

    Raises
    ------
    ConfigError
        Naming ``key`` for an unknown model or variant, ``models.<model>`` for a bad hyperparameter, the training key
        at fault for a bad per-model setting, and ``training.horizon`` when a model's loss window does not fit.
    """
    from densim.models import UnknownModelError, check_model

    for model in models:
        try:
            setup = model_setup(model, models_section, training_section)
        except UnknownModelError as err:
            raise ConfigError(f"{key}: {err}") from None
        for history in histories:
            try:
                check_model(setup.model, setup.hyperparameters, history)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"models.{model}: {err}" if model == setup.model else f"{key}: model variant {model}: {err}") from None
            steps, horizon = setup.training.unrolled_steps(history), setup.training.horizon
            if steps < 1 or history + 1 + steps > horizon:
                raise ConfigError(f"training.horizon: {horizon} frames leave no training window for {model} at history {history} "
                                  f"with {steps} loss steps (needs history + 1 + loss steps <= horizon)")


def ablation_grid(models: list[str], factors: dict[str, list], models_section: dict, training_section: dict) -> list[dict]:
    """The variants of a one-factor-at-a-time ablation: each factor's values, the other factors at the model's own.

    Parameters
    ----------
    models : list of str
        Registered model keys.
    factors : dict
        Setting name (a hyperparameter such as ``warmup`` or a per-model training key such as ``loss_steps``) ->
        the values to try.
    models_section, training_section : dict
        The ``models`` and ``training`` config sections (what the model's own settings are).

    Returns
    -------
    list of dict
        One row per (model, factor, value) with ``key`` (the variant, or the model itself at its own setting),
        ``model``, ``factor``, ``value`` and ``own`` (whether it is the model's own setting). Each factor's rows
        include the model's own setting.
    """
    from densim.models import model_defaults, variant_key

    rows = []
    for model in models:
        setup = model_setup(model, models_section, training_section)
        defaults = model_defaults(model)
        for factor, values in factors.items():
            own = getattr(setup.training, factor) if hasattr(setup.training, factor) else setup.hyperparameters.get(factor, defaults.get(factor))
            for value in dict.fromkeys([*values, own]):
                key = model if value == own else variant_key(model, {factor: value})
                rows.append({"key": key, "model": model, "factor": factor, "value": value, "own": value == own})
    return rows
