"""The ``densim`` command: each pipeline stage by hand, outside Snakemake.

Run ``densim --help`` or ``densim <stage> --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import yaml

from densim import __version__
from densim.config import ConfigError, default, schema_node


def _load_mapping(text: str, option: str) -> dict:
    """The mapping that ``option`` gives: inline JSON (it starts with ``{``), or a JSON or YAML file.

    Raises
    ------
    SystemExit
        Naming the option: malformed inline JSON (with the line and column), a missing or unreadable file, or a
        value that is not a mapping.
    """
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise SystemExit(f"densim: {option}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    else:
        try:
            content = Path(text).read_text()
        except OSError as err:
            raise SystemExit(f"densim: {option}: {text!r} is neither inline JSON nor a readable file ({err.strerror})") from None
        try:
            # JSON first: PyYAML reads numbers like 1e-12 (no decimal point) as strings
            value = json.loads(content)
        except json.JSONDecodeError:
            try:
                value = yaml.safe_load(content)
            except yaml.YAMLError as err:
                raise SystemExit(f"densim: {option}: {text} is neither JSON nor YAML ({err})") from None
    if not isinstance(value, dict):
        raise SystemExit(f"densim: {option}: expected a mapping (JSON or YAML, inline or a file), got {text!r}")
    return value


def _dataset_config(args):
    from densim.networks import ConfigError, DatasetConfig

    try:
        return DatasetConfig.from_dict(args.dataset, _load_mapping(args.spec, "--spec"))
    except (ConfigError, TypeError) as err:
        raise SystemExit(f"densim: invalid dataset spec: {err}") from err


def cmd_networks_generate(args) -> None:
    from densim.io import write_network
    from densim.networks import generate_network, network_dataset
    from densim.provenance import provenance_attrs

    config = _dataset_config(args)
    generated = generate_network(config, args.index)
    ds = network_dataset(config, args.index, generated, provenance_attrs(config.to_dict()))
    write_network(ds, args.output)
    logging.getLogger("densim").info("wrote %s", args.output)


def _imported_network(data_path, dataset: str, index: int):
    """The network of ``data_path`` (a LAMMPS data file) as ``dataset``'s network ``index``, with provenance; what the
    reader read other than as written (a section comment that names no style) and a floppy network go to the log."""
    from densim.dumps import read_data
    from densim.io import DensimFileError
    from densim.networks import imported_network
    from densim.provenance import provenance_attrs

    try:
        data = read_data(data_path)
        network_ds = imported_network(data, dataset, index, provenance_attrs({"source": "lammps"}, inputs=[data_path]))
    except DensimFileError as err:
        raise SystemExit(f"densim: {err}") from None
    except ValueError as err:
        raise SystemExit(f"densim: {data_path}: {err}") from None
    log = logging.getLogger("densim")
    for note in data.notes:
        log.warning("%s", note)
    if network_ds.attrs["floppy_modes"]:
        log.warning("%s: %s", data_path, network_ds.attrs["rigidity"])
    if network_ds.attrs["repeated_bonds"]:
        log.warning("%s: %d bonds repeat a pair (kept, as LAMMPS simulates them: two springs of one pair)", data_path,
                    network_ds.attrs["repeated_bonds"])
    return network_ds


def cmd_networks_import(args) -> None:
    from densim.io import write_network

    write_network(_imported_network(args.data, args.dataset, args.index), args.output)
    logging.getLogger("densim").info("wrote %s", args.output)


def cmd_networks_manifest(args) -> None:
    from densim.io import read_network, write_table
    from densim.networks import manifest
    from densim.provenance import provenance_attrs

    datasets = [read_network(path)[1] for path in args.networks]
    configs = {ds.attrs.get("config") for ds in datasets}
    if len(configs) != 1:
        raise SystemExit("densim: the network files come from different dataset configurations")
    table = manifest(datasets)
    write_table(table, args.output, provenance_attrs(json.loads(configs.pop()), inputs=args.networks))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def cmd_trajectories_simulate(args) -> None:
    from tqdm import tqdm

    from densim.io import read_network, write_trajectory
    from densim.provenance import provenance_attrs
    from densim.protocols import PROTOCOLS, md_settings
    from densim.trajectories import athermal_twin, simulate, thermal_twin, trajectory_dataset

    section = _load_mapping(args.settings, "--settings")
    settings = md_settings(section)
    # every protocol's own subsection is checked whatever the protocol, so a typo in it never waits for its dataset
    own = {name: protocol.settings(section) for name, protocol in PROTOCOLS.items()}[args.protocol]
    protocol = PROTOCOLS[args.protocol]
    trajectories = settings.__dict__ if protocol.subsection is None else {**settings.__dict__, protocol.subsection: own.__dict__}
    network, network_ds = read_network(args.network)
    name = f"{network_ds.attrs['dataset']}/{network_ds.attrs['network']}"
    with tqdm(total=settings.frames, desc=f"{args.protocol} {name}", unit="frame", mininterval=2.0, file=sys.stderr) as bar:
        run = simulate(network, settings, name, progress=lambda done: bar.update(done - bar.n), protocol=protocol, own=own)
    athermal = athermal_twin(network, settings, run, name, protocol=protocol, own=own)
    twin = thermal_twin(network, settings, name, protocol=protocol, own=own)
    attrs = provenance_attrs({"trajectories": trajectories, "network_config": json.loads(network_ds.attrs["config"])}, inputs=[args.network])
    ds = trajectory_dataset(network_ds, settings, run, attrs, athermal, protocol=protocol, own=own, dataset=args.dataset, twin=twin)
    write_trajectory(ds, args.output)
    arrival = f", front arrival at frame {float(ds['arrival_frame']):.2f}" if "arrival_frame" in ds else ""
    logging.getLogger("densim").info("wrote %s (%s, %d frames%s)", args.output, args.protocol, settings.frames, arrival)


def _import_settings(args) -> dict:
    """The ``--settings`` mapping with ``--units`` on top."""
    section = _load_mapping(args.settings, "--settings")
    return section if args.units is None else {**section, "units": args.units}


def _imported_run(dump_path, data_path, dataset: str, index: int, section: dict):
    """The network and trajectory files' contents of one imported run (a dump and its network's data file)."""
    from densim.dumps import read_dump
    from densim.io import DensimFileError
    from densim.provenance import provenance_attrs
    from densim.trajectories import import_trajectory

    network_ds = _imported_network(data_path, dataset, index)
    try:
        dump = read_dump(dump_path)
        attrs = provenance_attrs({"source": "lammps", "trajectories": section}, inputs=[dump_path, data_path])
        return network_ds, import_trajectory(dump, network_ds, section, attrs)
    except DensimFileError as err:
        raise SystemExit(f"densim: {err}") from None
    except (ValueError, ConfigError) as err:
        raise SystemExit(f"densim: {dump_path}: {err}") from None


def cmd_trajectories_import(args) -> None:
    from densim.io import write_network, write_trajectory

    network_ds, ds = _imported_run(args.dump, args.data, args.dataset, args.index, _import_settings(args))
    if args.network_output:
        write_network(network_ds, args.network_output)
    write_trajectory(ds, args.output)
    logging.getLogger("densim").info("wrote %s (%d frames, %d nodes, final strain %.3g, box Poisson ratio %.3f)", args.output,
                                     ds.sizes["time"], ds.sizes["node"], float(ds["strain"][-1]), float(ds["poisson_ratio_box"][-1]))


def cmd_trajectories_survey(args) -> None:
    from tqdm import tqdm

    from densim.dumps import UNITS, paired_files
    from densim.io import write_network, write_table, write_trajectory
    from densim.provenance import provenance_attrs
    from densim.trajectories import import_survey, log_temperature, rerun, survey_row

    section = _import_settings(args)
    boltzmann = UNITS[section.get("units", default("trajectories.units"))][1]
    try:
        pairs = paired_files(args.dumps, args.data)
    except ValueError as err:
        raise SystemExit(f"densim: --{err}") from None
    rows = []
    for index, (dump, data) in enumerate(tqdm(pairs, desc="import" if args.rerun is None else f"import and run {args.rerun}",
                                              unit="run", file=sys.stderr)):
        try:
            network_ds, ds = _imported_run(dump, data, args.dataset, index, section)
        except SystemExit as err:
            rows.append(survey_row(dump, data, None, str(err).removeprefix("densim: "), args.strains))
            continue
        log = Path(dump).parent / "log.lammps"
        temperature = log_temperature(log, boltzmann) if log.is_file() else None
        reruns = rerun(network_ds, args.rerun, args.seeds) if args.rerun else []
        rows.append(survey_row(dump, data, (network_ds, ds), "", args.strains, temperature, reruns))
        if args.output_dir:
            write_network(network_ds, args.output_dir / "networks" / f"{index:04d}.nc")
            write_trajectory(ds, args.output_dir / "trajectories" / f"{index:04d}.nc")
    table, text = import_survey(rows, args.strains)
    if args.output:
        write_table(table, args.output, provenance_attrs({"trajectories": section, "strains": args.strains, "rerun": args.rerun,
                                                          "seeds": args.seeds},
                                                         inputs=[path for pair in pairs for path in dict.fromkeys(pair)]))
    print(text)


def _union(text: str) -> tuple[str, list[str]]:
    """``NAME=A,B,C`` -> ("NAME", ["A", "B", "C"])."""
    name, _, members = text.partition("=")
    if not name or not members:
        raise SystemExit(f"densim: --union {text!r}: expected NAME=DATASET,DATASET,...")
    return name, members.split(",")


def cmd_trajectories_summary(args) -> None:
    from densim.io import read_trajectory, write_table
    from densim.provenance import provenance_attrs
    from densim.trajectories import summary

    unions = dict(_union(text) for text in args.union)
    try:
        table = summary([read_trajectory(path) for path in args.trajectories], args.small_strain, unions)
    except ValueError as err:
        raise SystemExit(f"densim: {err}") from err
    if args.output:
        write_table(table, args.output, provenance_attrs({"small_strain": args.small_strain, "unions": unions}, inputs=args.trajectories))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def cmd_splits_make(args) -> None:
    from densim.config import typed_config
    from densim.io import write_json
    from densim.provenance import provenance_attrs
    from densim.splits import SplitFractions, split_networks

    import pandas as pd

    fractions = typed_config(SplitFractions, _load_mapping(args.fractions, "--fractions"), "splits")
    table = pd.read_csv(args.manifest, dtype={"network": str})
    references = [f"{args.dataset}/{network}" for network in table["network"]]
    split = split_networks(references, fractions, args.seed)
    attrs = provenance_attrs({"seed": args.seed, "fractions": fractions.__dict__}, inputs=[args.manifest])
    write_json({"dataset": args.dataset, "seed": args.seed, **split, "provenance": attrs}, args.output)
    print({part: len(refs) for part, refs in split.items()})


def cmd_splits_union(args) -> None:
    from densim.io import read_json, write_json
    from densim.provenance import provenance_attrs
    from densim.splits import union_split

    members = [read_json(path, required=("train", "validation", "test", "seed")) for path in args.splits]
    seeds = {member["seed"] for member in members}
    if len(seeds) != 1:
        raise SystemExit(f"densim: the member splits have different seeds {sorted(seeds)}")
    split = union_split(members)
    attrs = provenance_attrs({"union_of": [m["dataset"] for m in members]}, inputs=args.splits)
    write_json({"dataset": args.dataset, "seed": seeds.pop(), **split, "provenance": attrs}, args.output)
    print({part: len(refs) for part, refs in split.items()})


def cmd_spectra(args) -> None:
    from densim.io import read_network, write_spectra
    from densim.provenance import provenance_attrs
    from densim.spectra import cached_spectra

    _, network_ds = read_network(args.network)
    settings = {"k": args.k, "dense_below": args.dense_below, "sigma": args.sigma}
    try:
        ds = cached_spectra(network_ds, args.k, args.cache_dir, args.dense_below, args.sigma, provenance_attrs({"spectra": settings}, inputs=[args.network]))
    except ValueError as err:
        raise SystemExit(f"densim: {args.network}: {err}") from err
    write_spectra(ds, args.output)
    logging.getLogger("densim").info("wrote %s (%s, %d nodes, k = %d)", args.output, ds.attrs["solver"], ds.sizes["node"], args.k)


def _by_reference(paths: list[Path], option: str) -> dict[str, Path]:
    """Files ``.../{dataset}/{network}.nc`` by their ``{dataset}/{network}`` reference."""
    found = {f"{path.parent.name}/{path.stem}": path for path in paths}
    if len(found) != len(paths):
        raise SystemExit(f"densim: {option} names the same network twice")
    return found


def _split_graphs(split: dict, split_path: Path, parts: tuple[str, ...], trajectories: dict[str, Path], spectra: dict[str, Path] | None,
                  history: int | None = None, needed: str = "", lazy: bool = False):
    """Trajectory graphs of some parts of a split, from exactly the files given (with their spectra if asked).

    With ``history``, a trajectory too short for ``history + 1`` input frames and a step to predict is refused,
    naming what ``needed`` it. Returns the graphs of each part and the files read. ``lazy``: each part is a
    :class:`densim.rollout.TrajectoryFiles`, which reads a graph's files anew whenever it is asked for one.
    """
    from functools import partial

    from densim.rollout import TrajectoryFiles

    graphs, read = {}, []
    for part in parts:
        loaders = []
        for ref in split[part]:
            if ref not in trajectories:
                raise SystemExit(f"densim: {split_path} names network {ref}, but no --trajectories file is {ref}.nc")
            loaders.append(partial(_split_graph, split_path, ref, trajectories, spectra, history, needed, read))
        graphs[part] = TrajectoryFiles(loaders) if lazy else [loader() for loader in loaders]
    return graphs, list(dict.fromkeys(read))


def _split_graph(split_path: Path, ref: str, trajectories: dict[str, Path], spectra: dict[str, Path] | None, history: int | None,
                 needed: str, read: list):
    """The graph of one network of a split (:func:`_split_graphs`), adding the files it reads to ``read``."""
    from densim.io import read_spectra, read_trajectory
    from densim.rollout import trajectory_graph

    trajectory = read_trajectory(trajectories[ref])
    # a regime variant's trajectories share their networks' spectra (the network's own dataset and id)
    network_ref = f"{trajectory.attrs.get('network_dataset', ref.split('/')[0])}/{ref.split('/')[-1]}"
    spectrum = None
    if spectra is not None:
        if network_ref not in spectra:
            shared = "" if network_ref == ref else f" (its network is {network_ref})"
            raise SystemExit(f"densim: {split_path} names network {ref}{shared}, but no --spectra file is {network_ref}.nc")
        spectrum = read_spectra(spectra[network_ref])
        _check_same_network(spectra[network_ref], spectrum, trajectories[ref], trajectory)
    if history is not None and trajectory.sizes["time"] < history + 2:
        raise SystemExit(f"densim: {trajectories[ref]}: {trajectory.sizes['time']} frames, fewer than the history {history} + 2 "
                         f"that {needed} needs (history + 1 input frames and one to predict)")
    read += [trajectories[ref]] + ([spectra[network_ref]] if spectra is not None else [])
    return trajectory_graph(trajectory, spectrum)


def _check_same_network(spectra_path: Path, spectra, trajectory_path: Path, trajectory) -> None:
    """Refuse a spectra file made for another network than the trajectory's (by its labels and node count)."""
    label = lambda ds: f"{ds.attrs.get('network_dataset', ds.attrs.get('dataset', '?'))}/{ds.attrs.get('network', '?')}"
    if label(spectra) != label(trajectory) or spectra.sizes["node"] != trajectory.sizes["node"]:
        raise SystemExit(f"densim: {spectra_path}: the spectra of network {label(spectra)} ({spectra.sizes['node']} nodes), "
                         f"not of {trajectory_path}'s network {label(trajectory)} ({trajectory.sizes['node']} nodes)")


def cmd_training_statistics(args) -> None:
    from densim.io import read_json, write_statistics
    from densim.provenance import provenance_attrs
    from densim.training import STATISTICS_KEYS, compute_statistics, training_config

    config = training_config(_load_mapping(args.spec, "--spec").get("training", {}))
    split = read_json(args.split, required=("train", "validation", "test"))
    graphs, read = _split_graphs(split, args.split, ("train",), _by_reference(args.trajectories, "--trajectories"), None)
    section = {key: getattr(config, key) for key in STATISTICS_KEYS}
    attrs = {"dataset": args.dataset, "networks": len(split["train"]), **provenance_attrs(section, inputs=[args.split, *read])}
    write_statistics(compute_statistics(graphs["train"], config), args.output, attrs)
    logging.getLogger("densim").info("wrote %s (train split of %d networks)", args.output, len(split["train"]))


def cmd_training_fit(args) -> None:
    from densim.io import read_json, read_statistics
    from densim.models import build_simulator
    from densim.provenance import provenance_attrs
    from densim.experiments import check_models, model_setup
    from densim.training import describe_run, train

    spec = _load_mapping(args.spec, "--spec")
    try:  # a bad model key, hyperparameter, history or per-model training setting fails before any file is read
        check_models([args.model], spec.get("models", {}), spec.get("training", {}), [args.history], key="--model")
        setup = model_setup(args.model, spec.get("models", {}), spec.get("training", {}))
    except ValueError as err:
        raise SystemExit(f"densim: {err}") from err
    config, hyperparameters = setup.training, setup.hyperparameters
    statistics = read_statistics(args.statistics)
    split = read_json(args.split, required=("train", "validation", "test"))
    graphs, read = _split_graphs(split, args.split, ("train", "validation"), _by_reference(args.trajectories, "--trajectories"),
                                 _by_reference(args.spectra, "--spectra"), args.history, "training")
    simulator = build_simulator(setup.model, args.history, statistics, seed=args.seed, hyperparameters=hyperparameters, **config.family)
    provenance = {"name": f"{args.dataset}/{args.model}/h{args.history}/seed{args.seed}",
                  **provenance_attrs(spec, inputs=[args.split, args.statistics, *read])}
    run = describe_run(args.model, simulator, args.seed, config, json.loads(provenance["input_hashes"]))
    history = train(simulator, graphs["train"], graphs["validation"], config, args.output, run, provenance)
    logging.getLogger("densim").info("best validation rollout error %.4g", min(history["validation_rollout_error"]))


def cmd_evaluation(args) -> None:
    import shutil

    from densim.evaluation import evaluate, evaluation_config
    from densim.io import evaluation_name, read_json, write_evaluation
    from densim.models import load_simulator
    from densim.provenance import provenance_attrs

    config = evaluation_config(_load_mapping(args.spec, "--spec"))
    runs = [(path, *load_simulator(path)) for path in args.checkpoints]
    names = [evaluation_name(checkpoint["run"]["model"], checkpoint["run"]["history"]) for _, _, checkpoint in runs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SystemExit(f"densim: two checkpoints of the same model and history ({', '.join(twice)}): one each")
    if args.seed is not None:
        for path, _, checkpoint in runs:
            if checkpoint["run"]["seed"] != args.seed:
                raise SystemExit(f"densim: {path}: a checkpoint of seed {checkpoint['run']['seed']}, expected {args.seed}")
    split = read_json(args.split, required=("train", "validation", "test"))
    if not split["test"]:
        raise SystemExit(f"densim: {args.split}: the test part is empty")
    # the test graphs do not depend on the history: read once, checked long enough for the longest
    graphs, read = _split_graphs(split, args.split, ("test",), _by_reference(args.trajectories, "--trajectories"),
                                 _by_reference(args.spectra, "--spectra"), max(simulator.history for _, simulator, _ in runs), "a rollout",
                                 lazy=config.rollouts_at_once is not None)
    # every file goes to a hidden sibling folder first, which replaces the output only when all are written: an
    # interrupted job leaves no partial folder at the output's path
    staging = args.output.with_name(f".{args.output.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = logging.getLogger("densim")
    try:
        for (path, simulator, checkpoint), name in zip(runs, names):
            run = checkpoint["run"]
            attrs = {"dataset": args.dataset, "model": run["model"], "seed": run["seed"], "run_hash": checkpoint["hash"],
                     "validation_one_step_relative_mse": float(checkpoint.get("validation_one_step_relative_mse", float("nan"))),
                     **provenance_attrs({"evaluation": config.__dict__}, inputs=[path, args.split, *read])}
            ds = evaluate(simulator, graphs["test"], config, attrs=attrs)
            write_evaluation(ds, staging / name)
            at = ds.sel(step=ds.attrs["table_step"])
            log.info("%s: %d test rollouts of %d steps; at step %d: L2 %.4g, relative MSE %.4g, Poisson R^2 %.4g, %d blown up",
                     name, ds.sizes["trajectory"], ds.sizes["step"], ds.attrs["table_step"], float(at["l2"].mean()),
                     float(at["relative_mse"]), float(at["poisson_r2"]), int(at["blown_up_count"]))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(args.output, ignore_errors=True)
    staging.rename(args.output)
    log.info("wrote %s: %d evaluation files", args.output, len(runs))


def cmd_figures(args) -> None:
    from densim.figures import render_notebook

    parameters = _load_mapping(args.parameters, "--parameters")
    render_notebook(args.notebook, args.output, parameters)
    logging.getLogger("densim").info("executed %s -> %s", args.notebook, args.output)


def cmd_provenance(args) -> None:
    from densim.io import DensimFileError
    from densim.provenance import provenance_chain

    try:
        provenance, links = provenance_chain(args.file, args.root)
    except DensimFileError as err:
        raise SystemExit(f"densim: {err}") from err
    if args.verify:
        stale = [link for link in links if link.status != "ok"]
        for link in stale:
            now = "it is gone" if link.current is None else f"now {link.current[:12]}"
            print(f"{link.status.upper():8} {link.path}: read by {link.consumer} as {link.recorded[:12]}, {now}")
        files = len({link.path for link in links})
        if stale:
            raise SystemExit(f"densim: {len({link.path for link in stale})} of {files} upstream files of {args.file} changed since they were used")
        print(f"{args.file}: all {files} upstream files are as they were used")
        return
    attrs = provenance[str(args.file)]
    width = max(map(len, attrs), default=0)
    for key, value in attrs.items():
        value = str(value)
        if value.startswith("{"):
            try:
                value = json.dumps(json.loads(value), indent=2, sort_keys=True).replace("\n", "\n" + " " * (width + 2))
            except json.JSONDecodeError:
                pass
        print(f"{key:<{width}}  {value}")
    print(f"\nupstream ({len(provenance) - 1} files; each listed once, under the first file that used it):")
    shown = {str(args.file)}
    for link in links:
        if link.path in shown:
            continue
        shown.add(link.path)
        made = provenance.get(link.path, {})
        origin = f"densim {made.get('densim_version', '?')}, git {str(made.get('git_commit', '?'))[:10]}, config {str(made.get('config_hash', '?'))[:10]}"
        print(f"{'  ' * link.depth}{link.path}  [{link.status}; {origin}]")


def cmd_cost(args) -> None:
    from densim.config import load_config
    from densim.cost import DryRunError, dag_jobs, estimate, format_estimate, measure
    from densim.experiments import resolve_config

    log = logging.getLogger("densim")
    config = resolve_config(load_config(args.config))
    log.info("asking Snakemake (%s) for the jobs of the measured run and of the run to price ...", args.workflow)
    try:
        measured_jobs, jobs = dag_jobs(args.measured_config, args.workflow), dag_jobs(args.config, args.workflow)
    except DryRunError as err:
        raise SystemExit(f"densim: {err}") from err
    measured = measure(args.measured, resolve_config(load_config(args.measured_config)), measured_jobs)
    total = sum(measured.jobs.values())
    if total == 0:
        raise SystemExit(f"densim: {args.measured}: no Snakemake benchmark files of a finished run to measure costs from "
                         "(every rule writes logs/benchmarks/...; run the workflow at some scale first)")
    print(f"{' + '.join(map(str, args.config))}: {len(jobs)} jobs")
    rows, unpriced = estimate(config, measured, jobs)
    print(format_estimate(rows, total, unpriced))
    if config["cluster"]["training_gpus"]:
        bound = " (an upper bound: a GPU trains faster)" if args.measured_device == "cpu" else ""
        print(f"GPU-hours: training jobs' wall time scaled from jobs that trained on {args.measured_device}{bound}, times "
              f"cluster.training_gpus = {config['cluster']['training_gpus']}.")


SPEC_HELP = """dataset spec: a JSON or YAML mapping, inline or a file, with the keys of one `datasets.<name>` section of
config.yaml (generator, networks, nu_range, tolerance, seed, stiffness, packing, node_opt, noi_pru); missing keys
take their defaults. Example: '{"generator": "bond_pru_opt", "networks": 8, "nu_range": [-0.6, 0.6]}'"""


def _import_arguments(parser) -> None:
    """The arguments both import commands take: the data file, the dataset and the network's index."""
    parser.add_argument("data", type=Path, help="LAMMPS data file of the network")
    parser.add_argument("--dataset", default="imported", help="dataset name recorded in the files (default %(default)s)")
    parser.add_argument("--index", type=int, default=0, help="the network's index in its dataset (default %(default)s)")


def _units_arguments(parser) -> None:
    """The settings both trajectory import commands take: ``--settings`` and ``--units``."""
    parser.add_argument("--settings", default="{}", help="the `trajectories` config keys the files do not say (see below)")
    parser.add_argument("--units", choices=schema_node("trajectories.units")["enum"], help="LAMMPS unit system of the files (the deck's units line; "
                        "overrides the settings' units; default lj): timestep and damping are in its time unit, and the import "
                        "translates time to tau = sqrt(m L^2 / E) of the node mass m")


def _networks_parser(stages) -> None:
    """The ``densim networks`` subcommand."""
    networks = stages.add_parser("networks", help="jammed packings -> spring networks tuned in Poisson ratio", description="The networks stage.")
    actions = networks.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = actions.add_parser("generate", help="make one network of a dataset", description="Make network INDEX of a dataset and write it as netCDF.", epilog=SPEC_HELP)
    generate.add_argument("--dataset", required=True, help="dataset name (recorded in the file and in error messages)")
    generate.add_argument("--spec", required=True, help="dataset spec (see below)")
    generate.add_argument("--index", required=True, type=int, help="network index, 0 <= INDEX < networks")
    generate.add_argument("-o", "--output", required=True, type=Path, help="netCDF file to write")
    generate.set_defaults(func=cmd_networks_generate)
    imp = actions.add_parser("import", help="a network from a LAMMPS data file",
                             description="Read a LAMMPS data file (atom style bond, angle, molecular or full; bond_style harmonic "
                             "coefficients K and r0, stiffness k = 2K) and write it as network INDEX of a dataset, with its moduli "
                             "by linear response.")
    _import_arguments(imp)
    imp.add_argument("-o", "--output", required=True, type=Path, help="network netCDF file to write")
    imp.set_defaults(func=cmd_networks_import)
    man = actions.add_parser("manifest", help="tabulate the networks of a dataset", description="Write the manifest CSV of a dataset's network files and print it.")
    man.add_argument("networks", nargs="+", type=Path, help="network netCDF files")
    man.add_argument("-o", "--output", required=True, type=Path, help="CSV file to write")
    man.set_defaults(func=cmd_networks_manifest)


def _trajectories_parser(stages) -> None:
    """The ``densim trajectories`` subcommand."""
    traj = stages.add_parser("trajectories", help="LAMMPS compression of networks", description="The trajectories stage.")
    actions = traj.add_subparsers(dest="action", required=True, metavar="ACTION")
    sim = actions.add_parser(
        "simulate",
        help="compress one network in LAMMPS, or kick it (impact)",
        description="Run one network through a trajectory protocol in LAMMPS and write the trajectory. compression: "
        "compress along x (transverse box at zero stress). impact: kick a strip of the network at rest outwards along x "
        "and follow the pulse at fixed box with weak damping; the file records the far strip's displacement and the "
        "front's arrival frame.",
        epilog="settings: a JSON or YAML mapping, inline or a file, with keys of the `trajectories` config section "
        "(strain, frames, steps_per_frame, timestep, mass, temperature, damping, pressure_damping, seed, ...) and its "
        "`impact` subsection (speed, strip, damping, steps_per_frame, far, arrival_fraction), which the impact protocol "
        "uses instead of the section's damping and steps_per_frame; missing keys take their defaults. Examples: "
        "'{\"frames\": 21, \"strain\": 0.01}'; --protocol impact --settings '{\"frames\": 41, \"impact\": {\"speed\": 0.002}}'",
    )
    sim.add_argument("network", type=Path, help="network netCDF file")
    sim.add_argument("--settings", default="{}", help="the `trajectories` config section (see below)")
    sim.add_argument("--protocol", choices=schema_node("datasets.*.protocol")["enum"], default=default("datasets.*.protocol"),
                     help="compression along x, or impact (a localised kick at fixed box); default %(default)s")
    sim.add_argument("--dataset", help="the dataset the trajectory belongs to (a regime variant's name; default: the network's dataset)")
    sim.add_argument("-o", "--output", required=True, type=Path, help="trajectory netCDF file to write")
    sim.set_defaults(func=cmd_trajectories_simulate)
    imp = actions.add_parser(
        "import", help="a compression simulated elsewhere: a LAMMPS dump and data file",
        description="Read a LAMMPS text dump of a compression along x (atom ids in any order; coordinates x y, xu yu, xs ys "
        "or xsu ysu, with image flags ix iy or without; the box per frame, periodic in x and y) and the data file of its "
        "network, and write a densim trajectory: unwrapped float64 positions, box and strain per frame, the Poisson ratio "
        "from box and from positions, with the source files' hashes.",
        epilog="settings: the `trajectories` keys that the files do not say: units (the deck's LAMMPS unit system, or "
        "--units), timestep (MD time per step) and damping (the damping time, which places where rollouts start with "
        "rollout_start), both in the units' time unit; the frame spacing comes from the dump's steps, the node mass from "
        "the data file. Example: densim trajectories import run.dump run.data --units metal --settings "
        "'{\"timestep\": 0.01, \"damping\": 1.0}' -o run.nc",
    )
    imp.add_argument("dump", type=Path, help="LAMMPS text dump of the compression")
    _import_arguments(imp)
    _units_arguments(imp)
    imp.add_argument("-o", "--output", required=True, type=Path, help="trajectory netCDF file to write")
    imp.add_argument("--network-output", type=Path, help="also write the network file")
    imp.set_defaults(func=cmd_trajectories_import)
    sur = actions.add_parser(
        "survey", help="import every run that glob patterns find, and say what was imported and what was refused",
        description="Import every (dump, data file) pair that the patterns find (sorted by name and paired in that order, as "
        "a source: lammps dataset pairs them), print one row per run (nodes, bonds, repeated bonds, floppy modes, frames, "
        "frame spacing in t0, the difficulty measures, the network's linear-response Poisson ratio and the box Poisson "
        "ratio at --strains) or the reason it was refused, then how many were found, imported and refused and the "
        "distribution of the box Poisson ratio at each strain.",
        epilog="Example (the study group's published runs, a clone of their repository at its first commit in published/): "
        "densim trajectories survey --dumps 'published/*/compression_sim/deform_dump.lammpstrj' "
        "--data 'published/*/compression_sim/network.lmp' --units metal --settings '{\"timestep\": 0.01, \"damping\": 1.0}'",
    )
    sur.add_argument("--dumps", required=True, help="glob pattern of the LAMMPS text dumps (quote it)")
    sur.add_argument("--data", required=True, help="glob pattern of the data files, paired with the dumps in name order, or one file")
    sur.add_argument("--dataset", default="imported", help="dataset name recorded in the files (default %(default)s)")
    _units_arguments(sur)
    sur.add_argument("--strains", type=float, nargs="+", default=[0.01, 0.025, 0.05], metavar="STRAIN",
                     help="compressive strains at which to read the box Poisson ratio (default %(default)s)")
    sur.add_argument("--rerun", choices=schema_node("trajectories.dynamics")["enum"], metavar="REGIME",
                     help="also compress each imported network with densim's own deck in this regime (published for the "
                     "study group's runs) and set its runs beside the imported one")
    sur.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4], metavar="SEED",
                     help="Langevin seeds of the --rerun runs (default %(default)s)")
    sur.add_argument("-o", "--output", type=Path, help="also write the table as CSV")
    sur.add_argument("--output-dir", type=Path, help="also write each imported run's networks/NNNN.nc and trajectories/NNNN.nc here")
    sur.set_defaults(func=cmd_trajectories_survey)
    summ = actions.add_parser("summary", help="per-dataset summary of trajectories", description="Tabulate trajectory files by dataset.")
    summ.add_argument("trajectories", nargs="+", type=Path)
    summ.add_argument("--small-strain", type=float, default=default("trajectories.small_strain"),
                      help="axial strain up to which compression nu is fitted (config key trajectories.small_strain; default %(default)s)")
    summ.add_argument("--union", action="append", default=[], metavar="NAME=A,B,...", help="also a row for the union of these datasets (repeatable)")
    summ.add_argument("-o", "--output", type=Path, help="also write the table as CSV")
    summ.set_defaults(func=cmd_trajectories_summary)


def _splits_parser(stages) -> None:
    """The ``densim splits`` subcommand."""
    splits = stages.add_parser("splits", help="train/validation/test splits by network", description="Splits by network, per seed.")
    actions = splits.add_subparsers(dest="action", required=True, metavar="ACTION")
    make = actions.add_parser("make", help="split one dataset", description="Split the networks of a manifest at random.")
    make.add_argument("manifest", type=Path, help="the dataset's manifest.csv")
    make.add_argument("--dataset", required=True)
    make.add_argument("--seed", required=True, type=int)
    make.add_argument("--fractions", default="{}", help='JSON mapping, e.g. \'{"train": 0.7, "validation": 0.1, "test": 0.2}\'')
    make.add_argument("-o", "--output", required=True, type=Path)
    make.set_defaults(func=cmd_splits_make)
    union = actions.add_parser("union", help="split of a union dataset", description="Union of member datasets' splits of one seed.")
    union.add_argument("splits", nargs="+", type=Path, help="member split JSON files of the same seed")
    union.add_argument("--dataset", required=True)
    union.add_argument("-o", "--output", required=True, type=Path)
    union.set_defaults(func=cmd_splits_union)


def _spectra_parser(stages) -> None:
    """The ``densim spectra`` subcommand."""
    spectra = stages.add_parser(
        "spectra",
        help="Laplacian eigenpairs of a network",
        description="Write the first k eigenpairs of the symmetric normalised Laplacian of a network's bonds, reusing "
        "the entry of its topology in the cache (keyed by a hash of the topology) or adding one.",
    )
    spectra.add_argument("network", type=Path, help="network netCDF file")
    spectra.add_argument("--k", required=True, type=int, help="eigenpairs to keep; modes beyond the node count are zero padding marked invalid")
    spectra.add_argument("--dense-below", type=int, default=default("spectra.dense_below"),
                         help="networks with fewer nodes are diagonalised densely, larger ones by shift-invert Lanczos (default %(default)s)")
    spectra.add_argument("--sigma", type=float, default=default("spectra.sigma"), help="shift of the shift-invert iteration, below 0 (default %(default)s)")
    spectra.add_argument("--cache-dir", type=Path, default=Path(default("spectra.cache")), help="folder of the topology-keyed cache (default %(default)s)")
    spectra.add_argument("-o", "--output", required=True, type=Path, help="spectra netCDF file to write")
    spectra.set_defaults(func=cmd_spectra)


def _training_parser(stages) -> None:
    """The ``densim training`` subcommand."""
    tr = stages.add_parser("training", help="normalisation statistics and learned simulators", description="The training stage.")
    actions = tr.add_subparsers(dest="action", required=True, metavar="ACTION")
    spec_help = "JSON mapping with the `training` and `models` config sections (missing keys take their defaults)"
    stats = actions.add_parser("statistics", help="normalisation statistics of a split's train part",
                               description="Mean and std of velocities, accelerations and edge features over the training "
                               "horizon of the train networks of a split, written as netCDF.")
    fit = actions.add_parser("fit", help="train one simulator",
                             description="Train a simulator (or fit a baseline) on a split. Resumes from OUTPUT/last.pt when that "
                             "checkpoint comes from the same run (same model, hyperparameters, history, seed, training "
                             "settings and input files); otherwise trains from step 0 and says why.")
    for action in (stats, fit):
        action.add_argument("--dataset", required=True)
        action.add_argument("--split", required=True, type=Path, help="split JSON of the dataset and seed")
        action.add_argument("--trajectories", required=True, nargs="+", type=Path, metavar="FILE",
                            help="trajectory files .../{dataset}/{network}.nc, one for every network of the split it uses (only these are read)")
        action.add_argument("--spec", default="{}", help=spec_help)
    stats.add_argument("-o", "--output", required=True, type=Path, help="statistics netCDF file to write")
    stats.set_defaults(func=cmd_training_statistics)
    fit.add_argument("--model", required=True, help="model key of densim.models.MODELS (e.g. spatial, nlsf_norm, frozen, linear_floor), or a variant "
                     "MODEL@KEY=VALUE@... changing its hyperparameters or training settings (e.g. igns@warmup=5@loss_steps=1)")
    fit.add_argument("--history", required=True, type=int, help="velocities per node feature")
    fit.add_argument("--seed", required=True, type=int)
    fit.add_argument("--statistics", required=True, type=Path, help="statistics netCDF of the split (densim training statistics)")
    fit.add_argument("--spectra", required=True, nargs="+", type=Path, metavar="FILE",
                     help="spectra files .../{dataset}/{network}.nc, one for every train and validation network (only these are read)")
    fit.add_argument("-o", "--output", required=True, type=Path, help="output folder (last.pt, best.pt, history.json)")
    fit.set_defaults(func=cmd_training_fit)


def _evaluation_parser(stages) -> None:
    """The ``densim evaluation`` subcommand."""
    ev = stages.add_parser("evaluation", help="roll trained simulators out on their test split and score every step",
                           description="Roll each checkpoint's simulator out on every test trajectory of a split (all together, one "
                           "batched step at a time) from its first h + 1 frames to its last frame, and write the metrics per "
                           "trajectory and step (positional L2 and RMS error, MSE relative to the frozen baseline, Poisson "
                           "ratio, error by Laplacian eigenmode, blow-up flags) and across trajectories (Poisson R^2 and bias) "
                           "as netCDF. Definitions: densim.evaluation, and the file's attributes.")
    ev.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT",
                    help="checkpoints of densim training fit (best.pt) of the dataset and split, any models and histories")
    ev.add_argument("--dataset", required=True)
    ev.add_argument("--split", required=True, type=Path, help="split JSON of the dataset and seed")
    ev.add_argument("--trajectories", required=True, nargs="+", type=Path, metavar="FILE", help="trajectory files .../{dataset}/{network}.nc of every test network")
    ev.add_argument("--spectra", required=True, nargs="+", type=Path, metavar="FILE", help="spectra files .../{dataset}/{network}.nc of every test network")
    ev.add_argument("--seed", type=int, help="refuse a checkpoint of another seed")
    ev.add_argument("--spec", default="{}", help="JSON mapping with keys of the `evaluation` config section (table_step, blowup_l2)")
    ev.add_argument("-o", "--output", required=True, type=Path,
                    help="folder to write, one evaluation netCDF file per checkpoint: {model}_h{history}.nc (replaced whole)")
    ev.set_defaults(func=cmd_evaluation)


def _figures_parser(stages) -> None:
    """The ``densim figures`` subcommand."""
    fig = stages.add_parser("figures", help="render a figure or table notebook with papermill",
                            description="Execute a parameterised notebook of notebooks/ (papermill) and keep the executed copy; "
                            "the notebook writes its figures (PDF and PNG) or tables (CSV, Markdown, LaTeX), each with a "
                            "provenance sidecar.",
                            epilog="Example: densim figures notebooks/rollout_accuracy.ipynb --parameters "
                            "'{\"evaluations\": [\"results/evaluation/main/node_opt/seed0/spatial_h2.nc\"], \"figure\": \"demo/rollout_accuracy\"}' "
                            "-o demo/rollout_accuracy.ipynb")
    fig.add_argument("notebook", type=Path, help="notebook to execute (notebooks/*.ipynb)")
    fig.add_argument("--parameters", default="{}", help="JSON or YAML mapping of the notebook's parameters, inline or a file")
    fig.add_argument("-o", "--output", required=True, type=Path, help="executed notebook to write")
    fig.set_defaults(func=cmd_figures)


def _provenance_parser(stages) -> None:
    """The ``densim provenance`` subcommand."""
    prov = stages.add_parser("provenance", help="show how an output file was made, or verify its inputs",
                             description="Print the provenance attributes of a densim output and the chain of every file upstream "
                                         "of it (each file's inputs, recorded with their SHA-256 when it was made, back to the "
                                         "networks), with the configuration hash and code version of each.")
    prov.add_argument("file", type=Path, help="any densim output: table, figure, evaluation file, checkpoint, split, trajectory, ...")
    prov.add_argument("--verify", action="store_true",
                      help="re-hash every upstream file and name each one that changed since it was used (edited, regenerated "
                           "or missing); exit 1 if any did")
    prov.add_argument("--root", type=Path, default=Path("."), help="directory the recorded paths are relative to (default: here)")
    prov.set_defaults(func=cmd_provenance)


def _cost_parser(stages) -> None:
    """The ``densim cost`` subcommand."""
    cost = stages.add_parser("cost", help="estimate the jobs, CPU-hours and GPU-hours of a config before running it",
                             description="List the jobs a run of a configuration consists of, per stage (Snakemake's own "
                                         "dry run of the workflow), and price them from the Snakemake benchmarks of a run "
                                         "that finished (logs/benchmarks), scaled by each stage's units of work (densim.cost).",
                             epilog="Example: densim cost config.yaml workflow/presets/paper.yaml "
                                    "--measured logs/benchmarks --measured-config config.yaml")
    cost.add_argument("config", nargs="+", type=Path, help="config files layered in order, as Snakemake does (config.yaml first)")
    cost.add_argument("--measured", type=Path, default=Path("logs/benchmarks"), help="benchmarks of a finished run (default: %(default)s)")
    cost.add_argument("--measured-config", nargs="+", type=Path, default=[Path("config.yaml")], metavar="FILE",
                      help="config files of that run, layered in order (default: %(default)s)")
    cost.add_argument("--measured-device", choices=["cpu", "gpu"], default="cpu",
                      help="what the measured run's training jobs ran on (default: %(default)s)")
    cost.add_argument("--workflow", type=Path, default=Path("."), help="folder of the workflow's Snakefile (default: %(default)s)")
    cost.set_defaults(func=cmd_cost)


#: One parser builder per stage, in the order ``densim --help`` lists them.
STAGE_PARSERS = (_networks_parser, _trajectories_parser, _splits_parser, _spectra_parser, _training_parser, _evaluation_parser, _figures_parser, _provenance_parser, _cost_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="densim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"densim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for add in STAGE_PARSERS:
        add(stages)
    return parser


@contextlib.contextmanager
def _scratch_folder():
    """Temporary files of this command (and of the processes it starts) in a folder removed when it ends.

    PyTorch Geometric writes a generated module per message-passing class into the temporary folder and never
    removes it, which left thousands of files in /tmp after a workflow run."""
    previous = tempfile.tempdir, os.environ.get("TMPDIR")
    with tempfile.TemporaryDirectory(prefix="densim-") as scratch:
        tempfile.tempdir = os.environ["TMPDIR"] = scratch
        try:
            yield scratch
        finally:
            tempfile.tempdir = previous[0]
            if previous[1] is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous[1]


def _exit_on_sigterm(signum, frame):
    # SystemExit unwinds the stack, so atomic writers remove their temporary files.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from densim.io import DensimFileError
    from densim.md import SimulationError

    try:
        with _scratch_folder():
            args.func(args)
        sys.stdout.flush()
    except (DensimFileError, SimulationError) as err:  # a bad file, or a LAMMPS run refused or failed: named, no traceback
        raise SystemExit(f"densim: {err}") from err
    except ConfigError as err:
        raise SystemExit(f"densim: invalid config key {err}") from err
    except BrokenPipeError:
        # The reader of stdout went away (`densim cost ... | head`): stop quietly, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
