"""Trajectories a user brings: the project's own LAMMPS run written as a LAMMPS dump and data file (full precision),
imported back, equals its trajectory file; bad files are refused with the file and the line or frame named, and
nothing is written."""

import json

import numpy as np
import pytest

from densim.cli import main
from densim.dumps import read_data, read_dump, write_data, write_dump
from densim.io import read_network, read_trajectory, write_trajectory
from densim.lammps import network_energy_forces
from densim.md import MDSettings
from densim.networks import DatasetConfig, generate_network, network_dataset
from densim.springs import SpringNetwork
from densim.trajectories import simulate, trajectory_dataset

SETTINGS = {"dynamics": "study", "frames": 21, "temperature": 1e-12}


@pytest.fixture(scope="module", params=[0, 1], ids=["network 0", "network 1"])
def simulated(tmp_path_factory, request):
    """Each of two NOI-PRU networks of 64 nodes (nu -0.2 and 0.2) compressed in LAMMPS, its trajectory file, and that
    run written as a data file and a dump (atoms listed in a shuffled order, ids not 1..N)."""
    index = request.param
    folder = tmp_path_factory.mktemp(f"dumps{index}")
    config = DatasetConfig.from_dict("noi_pru", {"generator": "noi_pru", "networks": 2, "nu_range": [-0.2, 0.2], "packing": {"nodes": 64}})
    generated = generate_network(config, index)
    network_ds = network_dataset(config, index, generated, {})
    settings = MDSettings(**SETTINGS)
    run = simulate(generated.network, settings, f"noi_pru/{index:04d}")
    trajectory = write_trajectory(trajectory_dataset(network_ds, settings, run, {}), folder / "trajectory.nc")
    net = generated.network
    rng = np.random.default_rng(3)
    ids = 100 + 3 * np.arange(net.num_nodes)  # ascending with the node (the network's node order is by id), not 1..N
    write_data(folder / "run.data", net.positions, net.box, net.bonds, net.stiffness, net.rest_lengths, settings.mass, ids=ids)
    return folder, trajectory, ids, rng.permutation(net.num_nodes), settings


def dump_of(simulated, coordinates: str, name: str):
    folder, trajectory, ids, order, settings = simulated
    ds = read_trajectory(trajectory)
    box = ds["box"].values
    lo = (box[0] - box) / 2  # the box stays centred on its first centre
    steps = np.arange(ds.sizes["time"]) * settings.steps_per_frame + 1000
    return write_dump(folder / name, steps, ds["positions"].values, box, lo=lo, coordinates=coordinates, ids=ids, order=order)


@pytest.mark.parametrize("coordinates", ["xu yu", "x y ix iy", "x y", "xs ys", "xsu ysu"])
def test_a_dump_and_data_file_of_our_own_run_import_to_its_trajectory_file(simulated, coordinates, tmp_path):
    folder, trajectory, ids, _, settings = simulated
    dump = dump_of(simulated, coordinates, f"run-{coordinates.replace(' ', '')}.dump")
    output = tmp_path / "imported.nc"
    main(["trajectories", "import", str(dump), str(folder / "run.data"), "--settings", json.dumps({**SETTINGS, "timestep": settings.timestep}),
          "--network-output", str(tmp_path / "network.nc"), "-o", str(output)])
    truth, imported = read_trajectory(trajectory), read_trajectory(output)
    for name in ("positions", "box", "strain", "time"):
        np.testing.assert_allclose(imported[name].values, truth[name].values, rtol=0, atol=1e-12, err_msg=name)
    for name in ("bonds", "rest_length", "stiffness"):
        np.testing.assert_allclose(imported[name].values, truth[name].values, rtol=1e-15, err_msg=name)
    for name in ("poisson_ratio_box", "poisson_ratio_positions", "poisson_ratio_slope"):
        np.testing.assert_allclose(imported[name].values, truth[name].values, rtol=1e-9, atol=1e-15, err_msg=name)
    # the springs' energy of each frame, against LAMMPS's of the same positions (the run's own thermo value is taken
    # before fix deform's remap of the frame's last step, so it trails the recorded positions)
    for frame in (0, 10, 20):
        box = truth["box"].values[frame]
        net = SpringNetwork(np.mod(truth["positions"].values[frame], box), box, truth["bonds"].values.astype(np.int64),
                            truth["rest_length"].values, truth["stiffness"].values)
        assert float(imported["potential_energy"][frame]) == pytest.approx(network_energy_forces(net)[0], rel=1e-9, abs=1e-20)
    for name in ("bulk_modulus", "shear_modulus", "uniaxial_poisson_ratio"):
        assert float(imported[name]) == pytest.approx(float(truth[name]), rel=1e-9), name
    assert imported.attrs["protocol"] == "compression" and imported.attrs["source"] == "lammps dump"
    hashes = json.loads(imported.attrs["input_hashes"])
    assert set(hashes) == {str(dump), str(folder / "run.data")}
    network, network_ds = read_network(tmp_path / "network.nc")
    np.testing.assert_array_equal(network_ds["atom_id"].values, np.sort(ids))
    assert network_ds.attrs["generator"] == "lammps" and float(network_ds.attrs["mass"]) == settings.mass


def test_the_readers_keep_full_precision_and_sort_atoms_by_id(simulated):
    folder, trajectory, ids, order, _ = simulated
    data = read_data(folder / "run.data")
    assert np.array_equal(data.ids, np.sort(ids))
    dump = read_dump(dump_of(simulated, "xu yu", "sorted.dump"))
    truth = read_trajectory(trajectory)
    # node i has atom id ids[i]: sorted by id, row r is node argsort(ids)[r]
    np.testing.assert_array_equal(dump.positions, truth["positions"].values[:, np.argsort(ids)])
    assert not dump.wrapped and dump.velocities is None and dump.timesteps[0] == 1000


def _edit(path, target, change):
    lines = path.read_text().splitlines()
    target.write_text("\n".join(change(lines)) + "\n")
    return target


def _frame_starts(lines):
    return [i for i, line in enumerate(lines) if line == "ITEM: TIMESTEP"]


def _without_section(lines, title):
    start = lines.index(title)
    end = next((i for i in range(start + 2, len(lines)) if lines[i] and not lines[i][0].isdigit()), len(lines))
    return lines[:start] + lines[end:]


def _without_coefficients(lines, types):
    start, end = lines.index("Bond Coeffs # harmonic"), lines.index("Atoms # bond")
    return lines[:start] + [line for line in lines[start:end] if line.split(" ", 1)[0] not in types] + lines[end:]


def _one_atom_fewer(lines):
    start = _frame_starts(lines)[3]
    return lines[:start + 3] + [str(int(lines[start + 3]) - 1)] + lines[start + 4:start + 9] + lines[start + 10:]


BAD_DUMPS = {
    "an atom count that changes": (_one_atom_fewer, r"run\.dump:\d+: frame 3 \(step \d+\) has (\d+) atoms, frame 0 has (\d+)"),
    "a frame cut off mid-way": (lambda lines: lines[:_frame_starts(lines)[-1] + 9 + 20],
                                r"frame 20 is cut off in its atoms \(20 of \d+ lines, at the end of the file"),
    "a non-periodic box": (lambda lines: [line.replace("pp pp pp", "ff pp pp") if i > _frame_starts(lines)[5] else line
                                          for i, line in enumerate(lines)], r"run\.dump:\d+: frame 5 has a box with boundaries ff pp pp"),
}
BAD_DATA = {
    "a missing Bonds section": (lambda lines: _without_section(lines, "Bonds"), r"run\.data: no Bonds section"),
    "bond types without coefficients": (lambda lines: _without_coefficients(lines, ("5", "9")),
                                        r"run\.data:\d+: bond types without coefficients: \[5, 9\]"),
}


@pytest.mark.parametrize("case", [*BAD_DUMPS, *BAD_DATA])
def test_a_bad_file_is_refused_naming_the_file_and_line_or_frame_and_nothing_is_written(simulated, case, tmp_path):
    folder, *_ = simulated
    dump, data = dump_of(simulated, "x y ix iy", "good.dump"), folder / "run.data"
    if case in BAD_DUMPS:
        change, message = BAD_DUMPS[case]
        dump = _edit(dump, tmp_path / "run.dump", change)
    else:
        change, message = BAD_DATA[case]
        data = _edit(data, tmp_path / "run.data", change)
    output = tmp_path / "out" / "imported.nc"
    with pytest.raises(SystemExit, match=message):
        main(["trajectories", "import", str(dump), str(data), "--network-output", str(tmp_path / "out" / "network.nc"), "-o", str(output)])
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.slow  # three LAMMPS runs, then a workflow run through training, evaluation and Tables 1 and 2 (about a minute)
def test_a_lammps_source_dataset_runs_through_the_workflow_unchanged(tmp_path):
    """A dataset of ``source: lammps`` (glob patterns of dumps and data files): Snakemake imports its networks and
    trajectories, then spectra, splits, statistics, training, evaluation and Tables 1 and 2 run on it as on a generated
    one."""
    import subprocess
    import sys

    import xarray as xr

    from tests.conftest import copy_checkout

    workdir = copy_checkout(tmp_path)
    config = DatasetConfig.from_dict("noi_pru", {"generator": "noi_pru", "networks": 3, "nu_range": [-0.2, 0.2], "packing": {"nodes": 48}})
    settings = MDSettings(frames=11, steps_per_frame=100, strain_per_frame=2.5e-5)
    for index in range(config.networks):
        net = generate_network(config, index).network
        run = simulate(net, settings, f"noi_pru/{index:04d}")
        lo = (run.box[0] - run.box) / 2
        write_dump(workdir / f"imports/run{index}.dump", np.arange(11) * 100, run.positions, run.box, lo=lo, coordinates="x y ix iy")
        write_data(workdir / f"imports/run{index}.data", net.positions, net.box, net.bonds, net.stiffness, net.rest_lengths, settings.mass)
    (workdir / "imported.yaml").write_text(
        "datasets:\n  mine: {source: lammps, dumps: 'imports/run*.dump', data: 'imports/run*.data'}\n"
        "experiments:\n  datasets: [mine]\n  models: [spatial, frozen]\n  history_ablation: {datasets: []}\n  igns_ablation: {datasets: []}\n")
    targets = ["results/evaluation/main/mine/seed0", "results/trajectories/summary.csv", "results/tables/table1_l2.csv",
               "results/tables/table2_poisson_r2.csv"]
    command = [sys.executable, "-m", "snakemake", *targets, "--cores", "2", "--configfile", "workflow/presets/smoke.yaml", "imported.yaml"]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    for rule in ("networks_import", "trajectories_import", "spectra", "splits", "training", "evaluation"):
        assert list((workdir / "logs/benchmarks" / rule).rglob("*.tsv")), rule
    assert not (workdir / "logs/benchmarks/networks").exists() and not (workdir / "logs/benchmarks/trajectories").exists()
    with xr.open_dataset(workdir / "results/evaluation/main/mine/seed0/spatial_h2.nc") as ds:
        assert ds.attrs["dataset"] == "mine" and np.isfinite(ds["l2"].values).all()
    imported = read_trajectory(workdir / "results/trajectories/mine/0002.nc")
    hashes = json.loads(imported.attrs["input_hashes"])
    assert set(hashes) == {"imports/run2.dump", "imports/run2.data"}
    import pandas as pd

    summary = pd.read_csv(workdir / "results/trajectories/summary.csv").set_index("dataset")
    assert list(summary.index) == ["mine"] and summary.loc["mine", "positions_vs_box_r2"] > 0.99
    for table in ("table1_l2", "table2_poisson_r2"):  # the study's Tables 1 and 2, of the imported dataset
        rows = pd.read_csv(workdir / f"results/tables/{table}.csv")
        assert rows.to_string().count("MINE") + rows.to_string().count("mine") >= 1 and len(rows) >= 2, rows


@pytest.mark.parametrize(("section", "message"), [
    ({"dumps": "nothing/*.dump", "data": "nothing/*.data"}, r"datasets\.mine\.dumps: 'nothing/\*\.dump' matches no file"),
    ({"data": "*.data"}, r"datasets\.mine\.dumps: required with source: lammps"),
    ({"dumps": "run*.dump", "data": "run*.data"}, r"datasets\.mine\.data: 2 data files for 3 dumps"),
    ({"dumps": "run*.dump", "data": "run0.data", "protocol": "impact"}, r"datasets\.mine\.protocol: imported trajectories are compressions"),
], ids=["no file", "no dumps key", "unpaired", "impact"])
def test_a_bad_lammps_source_is_named_by_its_key(section, message, tmp_path, monkeypatch):
    import yaml

    from densim.config import ConfigError, load_config
    from densim.experiments import resolve_config
    from tests.conftest import ROOT

    for name in ("run0.dump", "run1.dump", "run2.dump", "run0.data", "run1.data"):
        (tmp_path / name).write_text("")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"datasets": {"mine": {"source": "lammps", **section}}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        resolve_config(load_config([ROOT / "config.yaml", tmp_path / "mine.yaml"]))
