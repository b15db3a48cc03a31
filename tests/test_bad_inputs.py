"""Bad inputs to the stage commands: each is refused with a message naming the file and the cause, before any output
is written, and the inputs are left as they were."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from densim.cli import main
from densim.io import write_json

SETTINGS = '{"frames": 8, "steps_per_frame": 50}'
SPEC = json.dumps({"training": {"horizon": 8, "steps": 2, "batch_size": 1, "validate_every": 1}})


def run(*argv):
    """Run a densim command in this process; return its error message (empty when it succeeds)."""
    try:
        main([str(a) for a in argv])
    except SystemExit as stop:
        return str(stop)
    return ""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Three tiny networks with trajectories and spectra, a split, statistics and a frozen model, by the commands."""
    root = tmp_path_factory.mktemp("made")
    for index in range(3):
        network = root / f"networks/tiny/{index:04d}.nc"
        assert not run("networks", "generate", "--dataset", "tiny", "--index", index, "-o", network, "--spec",
                       '{"generator": "bond_pru_opt", "networks": 3, "nu_range": [-0.3, 0.3], "packing": {"nodes": 40}}')
        assert not run("trajectories", "simulate", network, "--settings", SETTINGS, "-o", root / f"trajectories/tiny/{index:04d}.nc")
        assert not run("spectra", network, "--k", 4, "--cache-dir", root / "cache", "-o", root / f"spectra/tiny/{index:04d}.nc")
    write_json({"train": ["tiny/0000"], "validation": ["tiny/0001"], "test": ["tiny/0002"]}, root / "split.json")
    assert not run("training", "statistics", "--dataset", "tiny", "--split", root / "split.json", "--trajectories",
                   *sorted((root / "trajectories/tiny").glob("*.nc")), "--spec", SPEC, "-o", root / "stats.nc")
    assert not run(*fit(root, "frozen", root / "models/frozen"))
    return root


def fit(root: Path, model: str, out: Path, history: int = 2) -> list:
    return ["training", "fit", "--dataset", "tiny", "--model", model, "--history", history, "--seed", 0, "--split", root / "split.json",
            "--statistics", root / "stats.nc", "--trajectories", *sorted((root / "trajectories/tiny").glob("*.nc")),
            "--spectra", *sorted((root / "spectra/tiny").glob("*.nc")), "--spec", SPEC, "-o", out]


def evaluate(root: Path, checkpoint: Path, out: Path, *extra) -> list:
    return ["evaluation", checkpoint, "--dataset", "tiny", "--split", root / "split.json",
            "--trajectories", *sorted((root / "trajectories/tiny").glob("*.nc")), "--spectra", *sorted((root / "spectra/tiny").glob("*.nc")),
            "--spec", "{}", "-o", out, *extra]


def rewrite(path: Path, change) -> None:
    with xr.open_dataset(path) as ds:
        changed = change(ds.load())
    path.unlink()
    changed.to_netcdf(path)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1500])


def without_positions(path: Path) -> None:
    rewrite(path, lambda ds: ds.drop_vars("positions"))


def nan_positions(path: Path) -> None:
    rewrite(path, lambda ds: ds.assign(positions=ds["positions"].where(xr.DataArray(np.arange(ds.sizes["time"]) < 5, dims="time"))))


def other_kind(path: Path) -> None:
    shutil.copy(path.parents[2] / "spectra/tiny/0002.nc", path)


def too_short(path: Path) -> None:
    rewrite(path, lambda ds: ds.isel(time=slice(0, 3)))


#: (what is wrong, which file it is done to, what to run, what the message must say besides the file's name)
CASES = {
    "truncated netCDF": ("trajectories/tiny/0002.nc", truncate, "evaluation", "not a readable netCDF file"),
    "netCDF missing a variable": ("trajectories/tiny/0002.nc", without_positions, "evaluation", "missing variables ['positions']"),
    "NaN positions": ("trajectories/tiny/0002.nc", nan_positions, "evaluation", "non-finite positions from frame 5 on (3 frames)"),
    "a file of another kind": ("trajectories/tiny/0002.nc", other_kind, "evaluation", "expected a densim trajectory file, found kind 'spectra'"),
    "trajectory shorter than the history": ("trajectories/tiny/0002.nc", too_short, "evaluation",
                                            "3 frames, fewer than the history 2 + 2 that a rollout needs"),
    "spectra of another network": ("spectra/tiny/0002.nc", lambda p: shutil.copy(p.parent / "0001.nc", p), "evaluation",
                                   "the spectra of network tiny/0001 ("),
    "truncated statistics": ("stats.nc", truncate, "fit", "not a readable netCDF file"),
    "training trajectory with NaN positions": ("trajectories/tiny/0000.nc", nan_positions, "fit", "non-finite positions from frame 5"),
    "training trajectory shorter than the history": ("trajectories/tiny/0000.nc", too_short, "fit", "that training needs"),
    "truncated checkpoint": ("models/frozen/best.pt", truncate, "evaluation", "best.pt"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_file_is_named_with_its_cause_and_nothing_is_written(made, tmp_path, case):
    relative, damage, command, cause = CASES[case]
    root = tmp_path / "copy"
    shutil.copytree(made, root)
    bad = root / relative
    damage(bad)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    message = run(*(evaluate(root, root / "models/frozen/best.pt", out / "eval.nc") if command == "evaluation" else fit(root, "spatial", out)))
    assert str(bad) in message and cause in message, message
    assert not out.exists()  # nothing written
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing changed


def test_a_checkpoint_of_another_seed_or_the_same_run_twice_is_refused(made, tmp_path):
    checkpoint = made / "models/frozen/best.pt"
    message = run(*evaluate(made, checkpoint, tmp_path / "eval", "--seed", "1"))
    assert str(checkpoint) in message and "a checkpoint of seed 0, expected 1" in message, message
    command = evaluate(made, checkpoint, tmp_path / "eval")
    command.insert(1, checkpoint)
    assert "two checkpoints of the same model and history (frozen_h2.nc)" in run(*command)
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_empty_test_split_is_refused(made, tmp_path):
    split = write_json({"train": ["tiny/0000"], "validation": ["tiny/0001"], "test": []}, tmp_path / "split.json")
    command = evaluate(made, made / "models/frozen/best.pt", tmp_path / "eval.nc")
    command[command.index("--split") + 1] = split
    assert f"{split}: the test part is empty" in run(*command)


def test_a_table_edited_by_hand_is_refused_where_it_is_read(made, tmp_path):
    from densim.io import DensimFileError, read_table, write_table

    import pandas as pd

    table = write_table(pd.DataFrame({"dataset": ["tiny"], "linear_floor_r2": [0.5]}), tmp_path / "summary.csv", {"config": "{}"})
    assert read_table(table)["linear_floor_r2"].tolist() == [0.5]
    table.write_text(table.read_text().replace("0.5", "0.9"))
    with pytest.raises(DensimFileError, match=r"summary\.csv: edited since densim wrote it"):
        read_table(table)
    np.testing.assert_array_equal(pd.read_csv(table)["linear_floor_r2"], [0.9])  # the file itself is left as it is


ROOT = Path(__file__).resolve().parents[1]

#: Bad config values over the default config.yaml: (override, the key the message must name, the cause it must give).
BAD_CONFIGS = [
    ({"packing": {"nodes": "many"}}, "packing.nodes", "is not of type 'integer'"),
    ({"packing": {"nodes": 4}}, "packing.nodes", "less than the minimum of 8"),
    ({"packing": {"packing_fraction": 1.2}}, "packing.packing_fraction", "greater than or equal to the maximum of 1"),
    ({"trainng": {"steps": 5}}, "(top level)", "'trainng' was unexpected"),
    ({"training": {"stpes": 5}}, "training", "'stpes' was unexpected"),
    ({"training": {"learning_rate": -1}}, "training.learning_rate", "less than or equal to the minimum of 0"),
    ({"training": {"learning_rate": 1e-4, "final_learning_rate": 1e-3}}, "training.final_learning_rate", "must be at most training.learning_rate"),
    ({"training": {"overrides": {"igns": {"loss_steps": 0}}}}, "training.overrides.igns.loss_steps", "0 is less than the minimum of 1"),
    ({"training": {"overrides": {"igns": {"horizon": 30}}}}, "training.overrides.igns.horizon", "not a training key of one model"),
    ({"training": {"overrides": {"gcn": {"steps": 3}}}}, "training.overrides.gcn", "unknown model"),
    ({"experiments": {"histories": [30]}}, "training.horizon", "leave no training window"),
    ({"experiments": {"models": ["gcn"]}}, "experiments.models", "unknown model 'gcn'"),
    ({"experiments": {"history_ablation": {"datasets": ["nowhere"]}}}, "experiments.history_ablation.datasets", "not datasets of the datasets section"),
    ({"experiments": {"datasets": ["nowhere"]}}, "experiments.datasets", "not datasets of the datasets section"),
    ({"experiments": {"datasets": []}}, "experiments.datasets", "should be non-empty"),
    ({"experiments": {"igns_ablation": {"models": ["spatial"], "datasets": ["impact"]}}}, "experiments.igns_ablation.models", "warmup"),
    ({"seeds": []}, "seeds", "should be non-empty"),
    ({"seeds": [0, 0]}, "seeds", "has non-unique elements"),
    ({"splits": {"train": 0.9}}, "splits", "sum to 1"),
    ({"trajectories": {"frames": 1}}, "trajectories.frames", "less than the minimum of 4"),
    ({"trajectories": {"timestep": "fast"}}, "trajectories.timestep", "is not of type 'number', 'null'"),
    ({"trajectories": {"barostat_drag": 50}}, "trajectories.barostat_drag", "must be below 1"),
    ({"trajectories": {"impact": {"speed": 0}}}, "trajectories.impact.speed", "less than or equal to the minimum of 0"),
    ({"trajectories": {"impact": {"sped": 1}}}, "trajectories.impact", "'sped' was unexpected"),
    ({"models": {"spatial": {"hidden": -3}}}, "models.spatial", "hidden"),
    ({"models": {"spatial": {"colour": "red"}}}, "models.spatial", "colour"),
    ({"datasets": {"node_opt": {"generator": "magic"}}}, "datasets.node_opt.generator", "is not one of"),
    ({"datasets": {"node_opt": {"protocol": "shake"}}}, "datasets.node_opt.protocol", "is not one of"),
    ({"datasets": {"comb": {"union": ["node_opt", "nowhere"]}}}, "datasets.comb.union", "['nowhere'] are not generated or imported datasets or variants"),
    ({"datasets": {"comb": {"union": ["node_opt", "impact"]}}}, "datasets.comb.union", "must share one protocol"),
    ({"datasets": {"noi_pru": {"packing": {"nodes": 4}}}}, "datasets.noi_pru.packing.nodes", "less than the minimum of 8"),
    ({"datasets": {"noi_pru": {"packing": {"node": 400}}}}, "datasets.noi_pru.packing.node", "unknown key"),
    ({"datasets": {"impact": {"packing": {"nodes": 400}}}}, "datasets.impact.packing", "only a dataset with a generator"),
    ({"evaluation": {"table_step": 0}}, "evaluation.table_step", "less than the minimum of 1"),
    ({"spectra": {"k": 0}}, "spectra.k", "less than the minimum of 1"),
    # names reach folders, wildcards and shell words: only letters, digits, '_', '.' and '-'
    ({"datasets": {"a b; rm -rf x": {"variant_of": "node_opt"}}}, "datasets", "'a b; rm -rf x' does not match"),
    ({"experiments": {"datasets": ["$(id)"]}}, "experiments.datasets[0]", "does not match"),
    ({"experiments": {"models": ["spatial'"]}}, "experiments.models[0]", "does not match"),
    ({"models": {"spatial x": {}}}, "models", "does not match"),
]


def merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in recursively, as Snakemake merges --configfile files."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def workflow_config_error(config: dict) -> str:
    """What the workflow says of a config before any job (:func:`densim.experiments.resolve_config`, as
    ``workflow/rules/common.smk`` calls it): empty when it passes."""
    from densim.config import ConfigError
    from densim.experiments import resolve_config

    try:
        resolve_config(config)
    except ConfigError as err:
        return str(err)
    return ""


def test_the_default_config_and_presets_pass():
    import yaml

    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert workflow_config_error(merged(default, {})) == ""
    for preset in ("smoke", "paper", "large", "decks"):
        assert workflow_config_error(merged(default, yaml.safe_load((ROOT / f"workflow/presets/{preset}.yaml").read_text()))) == "", preset


@pytest.mark.parametrize(("override", "key", "cause"), BAD_CONFIGS, ids=[key for _, key, _ in BAD_CONFIGS])
def test_a_bad_config_value_is_named_with_its_cause(override, key, cause):
    import yaml

    message = workflow_config_error(merged(yaml.safe_load((ROOT / "config.yaml").read_text()), override))
    assert message.startswith(f"{key}") and cause in message, message


def test_an_empty_dataset_list_is_named():
    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["datasets"] = {}
    message = workflow_config_error(config)
    assert message.startswith("datasets") and "should be non-empty" in message, message


@pytest.mark.parametrize(("text", "cause"), [('{"frames": 8,', "--settings: not valid JSON (Expecting property name enclosed in double quotes at line 1 column 14)"),
                                           ("nowhere.yaml", "--settings: 'nowhere.yaml' is neither inline JSON nor a readable file"),
                                           ("[1, 2]", "--settings: 'nowhere.yaml'")])
def test_a_malformed_inline_mapping_names_its_option(made, tmp_path, text, cause):
    if text.startswith("["):
        (tmp_path / "list.json").write_text(text)
        text, cause = str(tmp_path / "list.json"), "--settings: expected a mapping"
    output = tmp_path / "trajectory.nc"
    message = run("trajectories", "simulate", made / "networks/tiny/0000.nc", "--protocol", "compression", "--settings", text, "--output", output)
    assert message.startswith("densim: ") and cause in message, message
    assert not output.exists()
