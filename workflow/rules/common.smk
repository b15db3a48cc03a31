# All workflow Python: config validation, wildcard constraints and input functions.
import json
import re

from snakemake.exceptions import WorkflowError

from densim.config import ConfigError
from densim.io import evaluation_name
from densim.experiments import (built_datasets, dataset_protocol, evaluation_grids, generated_datasets, igns_grid, imported_datasets, imported_files,
                                network_count, network_datasets, network_source, network_spec, resolve_config, run_datasets,
                                run_unions, simulated_datasets, training_section, trajectory_section, union_datasets)
from densim.models import model_variant
from densim.training import STATISTICS_KEYS
from densim.trajectories import IMPORT_KEYS


# The schema's check and defaults, every registered model unless the config names some, and the checks a schema
# cannot express, before any job runs (densim.experiments.resolve_config, which densim cost uses too).
try:
    resolve_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config key {err}") from None
EXPERIMENTS = config["experiments"]
ABLATION = EXPERIMENTS["history_ablation"]

# Datasets made by a generator, those imported from LAMMPS files, those with trajectories of their own (the generated
# and imported ones and the regime variants, which share their networks and spectra), and unions of them (made by
# reference, never regenerated).
GENERATED_DATASETS = generated_datasets(config)
IMPORTED_DATASETS = imported_datasets(config)
#: Datasets with networks (and spectra) of their own.
NETWORK_OWNERS = GENERATED_DATASETS + IMPORTED_DATASETS
SIMULATED_DATASETS = simulated_datasets(config)
UNION_DATASETS = union_datasets(config)
# The datasets the experiment grids train on (experiments.datasets and the ablations'), the ones whose trajectories
# they use, and the generated ones whose networks those use: the only ones `all` builds.
RUN_DATASETS = run_datasets(config)
BUILT_DATASETS = built_datasets(config)
NETWORK_DATASETS = network_datasets(config)
#: The IGNS ablation's variants (one row per model, factor and value), empty when it is off.
IGNS_GRID = igns_grid(config)


def dataset_spec(dataset):
    return network_spec(config, dataset)


#: Every model or variant some grid trains.
TRAINED_MODELS = list(dict.fromkeys(EXPERIMENTS["models"] + ABLATION["models"] + [row["key"] for row in IGNS_GRID]))


def one_of(names):
    """A wildcard constraint that matches exactly one of ``names`` (nothing when there are none)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    dataset=one_of(SIMULATED_DATASETS),
    union=one_of(UNION_DATASETS),
    network=r"\d{4}",
    seed=r"\d+",


def dataset_spec_json(wildcards):
    return json.dumps(dataset_spec(wildcards.dataset), sort_keys=True)


def trajectory_settings_json(wildcards):
    """The trajectories section a dataset's runs use (densim.experiments.trajectory_section); of an imported dataset,
    only the keys an import reads (densim.trajectories.IMPORT_KEYS), so that no other edit reimports it."""
    section = trajectory_section(config, wildcards.dataset)
    if wildcards.dataset in IMPORTED_DATASETS:
        section = {key: section[key] for key in IMPORT_KEYS if key in section}
    return json.dumps(section, sort_keys=True)


def imported_file(kind):
    """Input function: the LAMMPS dump (``kind`` 0) or data file (1) of an imported dataset's network."""
    return lambda wildcards: imported_files(config, wildcards.dataset)[int(wildcards.network)][kind]


def network_ids(dataset):
    return [f"{index:04d}" for index in range(network_count(config, dataset))]


def network_files(wildcards):
    return expand("results/networks/{dataset}/{network}.nc", dataset=wildcards.dataset, network=network_ids(wildcards.dataset))


def network_outputs(stage, datasets):
    """Per-network files of a stage for the given datasets: trajectories are a dataset's own, networks and spectra
    those of its network source (a regime variant shares them)."""
    owner = (lambda dataset: dataset) if stage == "trajectories" else (lambda dataset: network_source(config, dataset))
    return [f"results/{stage}/{owner(dataset)}/{network}.nc" for dataset in datasets for network in network_ids(dataset)]


def member_datasets(dataset):
    """The generated datasets whose networks a dataset holds: itself, or a union's members."""
    return config["datasets"][dataset].get("union", [dataset])


def training_spec_json(wildcards):
    """For a model's job, the training section plus that model's hyperparameters (so editing one model's section
    retrains that model only); for statistics, only the keys they depend on."""
    training = training_section(config, wildcards.dataset)
    if not hasattr(wildcards, "model"):
        return json.dumps({"training": {key: training[key] for key in STATISTICS_KEYS}}, sort_keys=True)
    model = model_variant(wildcards.model)[0]
    overrides = {model: training["overrides"][model]} if model in training["overrides"] else {}
    spec = {"training": {**training, "overrides": overrides}, "models": {model: config["models"].get(model, {})}}
    return json.dumps(spec, sort_keys=True)


def member_splits(wildcards):
    return expand("results/splits/{dataset}/seed{seed}.json", dataset=config["datasets"][wildcards.union]["union"], seed=wildcards.seed)


def union_options():
    """``--union NAME=A,B`` options of ``densim trajectories summary`` for every union dataset (a list: ``:q`` quotes
    each word)."""
    return [word for name in run_unions(config) for word in ("--union", f"{name}={','.join(config['datasets'][name]['union'])}")]



#: Experiment -> its runs (dataset, model, history, seed): main, history (ablation), igns_ablation.
GRIDS = evaluation_grids(config)


def evaluation_runs(wildcards):
    """The (model, history) runs of an evaluation job: those of its grid on its dataset and seed."""
    return [(m, h) for d, m, h, s in GRIDS[wildcards.grid] if d == wildcards.dataset and s == int(wildcards.seed)]


def notebook_grid(notebook):
    """The experiment grid a notebook draws from: its own, or the main one."""
    return notebook if notebook in GRIDS else "main"


def notebook_evaluations(notebook):
    """The evaluation files a notebook draws from, one per run of its grid (in the grid's evaluation folders)."""
    return [f"results/evaluation/{notebook_grid(notebook)}/{d}/seed{s}/{evaluation_name(m, h)}" for d, m, h, s in GRIDS[notebook_grid(notebook)]]


def evaluation_folders(notebook):
    """The evaluation folders (one job each: a grid's runs on one dataset and seed) that hold a notebook's files."""
    return list(dict.fromkeys(f"results/evaluation/{notebook_grid(notebook)}/{d}/seed{s}" for d, _, _, s in GRIDS[notebook_grid(notebook)]))


def notebook_parameters(notebook, **paths):
    """JSON parameters of a notebook: the evaluation files it draws from and where its outputs go."""
    grid = {"grid": IGNS_GRID} if notebook == "igns_ablation" else {}
    return json.dumps({"evaluations": notebook_evaluations(notebook), **grid, **paths})


#: Figures of the notebooks (results/figures/NAME.pdf and .png), and tables of the tables notebook.
FIGURES = (["rollout_accuracy"] + (["history"] if ABLATION["models"] and ABLATION["datasets"] else []) + ["modes_and_bias"]
           + (["igns_ablation"] if IGNS_GRID else []) + ["rollouts"])
TABLES = (["table1_l2", "table2_poisson_r2", "one_step_validation", "relative_mse", "difficulty"]
          + [f"{table}_step{step}" for step in config["tables"]["steps"] for table in ("table1_l2", "table2_poisson_r2")])
#: The tables notebook's report beside the study and its training curves (tables.fidelity).
FIDELITY = (["results/tables/fidelity.md", "results/figures/training_curves.pdf", "results/figures/training_curves.png"]
            if config["tables"]["fidelity"] else [])


#: The regime study's figure and table (tables.regime).
REGIME = (expand("results/figures/regime.{suffix}", suffix=["pdf", "png"]) + expand("results/tables/regime.{suffix}", suffix=["csv", "md"])
          if config["tables"]["regime"] else [])


#: The long-range study's figure and table (tables.long_range).
LONG_RANGE = (expand("results/figures/long_range.{suffix}", suffix=["pdf", "png"]) + expand("results/tables/long_range.{suffix}", suffix=["csv", "md"])
              if config["tables"]["long_range"] else [])


def training_histories(wanted=True):
    """The training curves (history.json) of the main grid's models, which the fidelity report and the regime study
    summarise (none unless ``wanted``)."""
    if not wanted:
        return []
    return [f"results/training/{d}/{m}/h{h}/seed{s}/history.json" for d, m, h, s in GRIDS["main"]]


def regime_parameters():
    """JSON parameters of the regime notebook."""
    regimes = {dataset: {"networks": network_source(config, member_datasets(dataset)[0])} for dataset in RUN_DATASETS}
    return json.dumps({"evaluations": notebook_evaluations("main"), "histories": training_histories(), "summary": "results/trajectories/summary.csv",
                       "regimes": regimes, "figure": "results/figures/regime", "table": "results/tables/regime"})


def long_range_parameters():
    """JSON parameters of the long-range notebook: each dataset's network source and family (the datasets it compares
    across network sizes share the generator of their networks and their protocol), and every model's hyperparameters."""
    families = {}
    for dataset in RUN_DATASETS:
        source = network_source(config, member_datasets(dataset)[0])
        generator = config["datasets"][source].get("generator") or config["datasets"][source].get("source")
        families[dataset] = {"networks": source, "family": f"{generator} {dataset_protocol(config, dataset)}"}
    models = {model: config["models"].get(model, {}) for model in EXPERIMENTS["models"]}
    return json.dumps({"evaluations": notebook_evaluations("main"), "networks": long_range_networks(), "families": families, "models": models,
                       "figure": "results/figures/long_range", "table": "results/tables/long_range"})


def long_range_networks():
    """The network files of the main grid's datasets (a variant's are its source's)."""
    return list(dict.fromkeys(network_outputs("networks", [member for dataset in RUN_DATASETS for member in member_datasets(dataset)])))


def all_outputs():
    return [
        *expand("results/networks/{dataset}/manifest.csv", dataset=NETWORK_DATASETS),
        *network_outputs("trajectories", BUILT_DATASETS),
        *network_outputs("spectra", NETWORK_DATASETS),
        "results/trajectories/summary.csv",
        *expand("results/splits/{dataset}/seed{seed}.json", dataset=RUN_DATASETS, seed=config["seeds"]),
        *(path for grid in GRIDS for path in evaluation_folders(grid)),
        *expand("results/figures/{figure}.{suffix}", figure=FIGURES, suffix=["pdf", "png"]),
        *expand("results/tables/{table}.{suffix}", table=TABLES, suffix=["csv", "md", "tex"]),
        "results/figures/rollouts.gif",
        *FIDELITY,
        *REGIME,
        *LONG_RANGE,
    ]
