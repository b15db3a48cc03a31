# All workflow Python: config validation, wildcard constraints and input functions.
import json

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from densim.networks import ConfigError, DatasetConfig


def _config_key(error):
    """Dotted path of the config key a schema error is about."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    return path or "(top level)"


try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:
    cause = err.__cause__ or err.__context__
    if not isinstance(cause, jsonschema.ValidationError):
        raise
    raise WorkflowError(f"invalid config key {_config_key(cause)}: {cause.message}") from None

# Datasets made by a generator (as opposed to unions of other datasets).
GENERATED_DATASETS = [name for name, section in config["datasets"].items() if "generator" in section]


wildcard_constraints:
    dataset="|".join(GENERATED_DATASETS),
    network=r"\d{4}",


def dataset_spec(dataset):
    """The resolved spec of a generated dataset: its section plus the shared generation settings."""
    shared = {key: config[key] for key in ("seed", "stiffness", "packing")}
    return {**shared, **config["datasets"][dataset]}


# Checks that a schema cannot express (for example low <= high in nu_range), before any job runs.
for _name in GENERATED_DATASETS:
    try:
        DatasetConfig.from_dict(_name, dataset_spec(_name))
    except ConfigError as err:
        raise WorkflowError(f"invalid config key {err}") from None


def dataset_spec_json(wildcards):
    return json.dumps(dataset_spec(wildcards.dataset), sort_keys=True)


def network_ids(dataset):
    return [f"{index:04d}" for index in range(config["datasets"][dataset]["networks"])]


def network_files(wildcards):
    return expand("results/networks/{dataset}/{network}.nc", dataset=wildcards.dataset, network=network_ids(wildcards.dataset))


def all_outputs():
    return expand("results/networks/{dataset}/manifest.csv", dataset=GENERATED_DATASETS)
