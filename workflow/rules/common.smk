# All workflow Python: config validation, wildcard constraints and input functions.
import json

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from densim.config import SCHEMA_PATH, ConfigError, error_key
from densim.models import MODELS
from densim.networks import DatasetConfig
from densim.splits import SplitFractions
from densim.trajectories import compression_settings
from densim.training import STATISTICS_KEYS, check_models, training_config


try:
    validate(config, schema=str(SCHEMA_PATH))
except WorkflowError as err:
    cause = err.__cause__ or err.__context__
    if not isinstance(cause, jsonschema.ValidationError):
        raise
    raise WorkflowError(f"invalid config key {error_key(cause)}: {cause.message}") from None

# Every registered model unless the config names some.
config["experiments"].setdefault("models", list(MODELS))

# Datasets made by a generator, and unions of them (made by reference, never regenerated).
GENERATED_DATASETS = [name for name, section in config["datasets"].items() if "generator" in section]
UNION_DATASETS = [name for name, section in config["datasets"].items() if "union" in section]


def dataset_spec(dataset):
    """The resolved spec of a generated dataset: its section plus the shared generation settings."""
    shared = {"seed": config["generation_seed"], "stiffness": config["stiffness"], "packing": config["packing"]}
    return {**shared, **config["datasets"][dataset]}


# Checks that a schema cannot express, before any job runs.
try:
    for _name in GENERATED_DATASETS:
        DatasetConfig.from_dict(_name, dataset_spec(_name))
    for _name in UNION_DATASETS:
        _unknown = [m for m in config["datasets"][_name]["union"] if m not in GENERATED_DATASETS]
        if _unknown:
            raise ConfigError(f"datasets.{_name}.union: {_unknown} are not generated datasets")
    compression_settings(config["trajectories"])
    training_config(config["training"])
    check_models(config["experiments"]["models"], config["models"], config["experiments"]["histories"])
    SplitFractions(**config["splits"])
except (ConfigError, TypeError, KeyError) as err:
    raise WorkflowError(f"invalid config key {err}") from None


wildcard_constraints:
    dataset="|".join(GENERATED_DATASETS),
    union="|".join(UNION_DATASETS) or "(?!)",
    network=r"\d{4}",
    seed=r"\d+",


def dataset_spec_json(wildcards):
    return json.dumps(dataset_spec(wildcards.dataset), sort_keys=True)


def network_ids(dataset):
    return [f"{index:04d}" for index in range(config["datasets"][dataset]["networks"])]


def network_files(wildcards):
    return expand("results/networks/{dataset}/{network}.nc", dataset=wildcards.dataset, network=network_ids(wildcards.dataset))


def network_outputs(stage, datasets):
    """Per-network files of a stage (trajectories, spectra) for the given datasets."""
    return [f"results/{stage}/{dataset}/{network}.nc" for dataset in datasets for network in network_ids(dataset)]


def member_datasets(dataset):
    """The generated datasets whose networks a dataset holds: itself, or a union's members."""
    return config["datasets"][dataset].get("union", [dataset])


def training_spec_json(wildcards):
    """For a model's job, the training section plus that model's hyperparameters (so editing one model's section
    retrains that model only); for statistics, only the keys they depend on."""
    if not hasattr(wildcards, "model"):
        return json.dumps({"training": {key: config["training"][key] for key in STATISTICS_KEYS}}, sort_keys=True)
    spec = {"training": config["training"], "models": {wildcards.model: config["models"].get(wildcards.model, {})}}
    return json.dumps(spec, sort_keys=True)


def member_splits(wildcards):
    return expand("results/splits/{dataset}/seed{seed}.json", dataset=config["datasets"][wildcards.union]["union"], seed=wildcards.seed)


def all_outputs():
    return [
        *expand("results/networks/{dataset}/manifest.csv", dataset=GENERATED_DATASETS),
        *network_outputs("trajectories", GENERATED_DATASETS),
        *network_outputs("spectra", GENERATED_DATASETS),
        "results/trajectories/summary.csv",
        *expand("results/splits/{dataset}/seed{seed}.json", dataset=list(config["datasets"]), seed=config["seeds"]),
        *expand(
            "results/models/{dataset}/{model}/h{history}/seed{seed}/best.pt",
            dataset=list(config["datasets"]),
            model=config["experiments"]["models"],
            history=config["experiments"]["histories"],
            seed=config["seeds"],
        ),
    ]
