"""Trajectories a user brings: the project's own LAMMPS run written as a LAMMPS dump and data file (full precision),
imported back, equals its trajectory file; bad files are refused with the file and the line or frame named, and
nothing is written."""

import json

import numpy as np
import pytest

from densim.cli import main
from densim.dumps import UNITS, read_data, read_dump, time_unit, write_data, write_dump
from densim.elasticity import floppy_linear_response, linear_response
from densim.io import read_network, read_trajectory, write_trajectory
from densim.lammps import network_energy_forces
from densim.md import MDSettings
from densim.networks import DatasetConfig, generate_network, imported_network, network_dataset
from densim.springs import SpringNetwork, minimum_image, triangular_lattice
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
    "an atom count the Atoms section disagrees with": (lambda lines: [f"{int(lines[2].split()[0]) + 1} atoms", *lines[3:]] and
                                                        [lines[0], lines[1], f"{int(lines[2].split()[0]) + 1} atoms", *lines[3:]],
                                                        r"run\.data:\d+: the Atoms section has \d+ lines, the header says \d+"),
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


def _floppy_lattice():
    """A triangular lattice of unit springs with one node more, on the middle of its first bond and held by two unit
    springs to that bond's ends (collinear: its motion across the bond is a floppy mode), and that first bond repeated.
    Along the bond the two half springs act in series (stiffness 1/2), so the network's moduli are the lattice's with
    a first bond of stiffness 1 + 1 + 1/2."""
    lattice = triangular_lattice(6, 6)
    first, second = lattice.bonds[0]
    extra = lattice.positions[first] + minimum_image(lattice.positions[second] - lattice.positions[first], lattice.box) / 2
    positions = np.vstack([lattice.positions, extra])
    node = len(lattice.positions)
    bonds = np.vstack([lattice.bonds, [[first, node], [second, node]], lattice.bonds[:1]])
    vectors = minimum_image(positions[bonds[:, 1]] - positions[bonds[:, 0]], lattice.box)
    rest = np.linalg.norm(vectors, axis=1)
    return SpringNetwork(positions, lattice.box, bonds, rest, np.ones(len(bonds))), lattice


def test_a_floppy_network_has_the_moduli_that_exist_and_says_why(tmp_path):
    floppy, lattice = _floppy_lattice()
    path = write_data(tmp_path / "floppy.data", floppy.positions, floppy.box, floppy.bonds, floppy.stiffness, floppy.rest_lengths, 1.0)
    ds = imported_network(read_data(path), "mine", 0, {})
    assert ds.attrs["floppy_modes"] == 1 and "not rigid" in ds.attrs["rigidity"] and ds.attrs["repeated_bonds"] == 1
    stiffer = SpringNetwork(lattice.positions, lattice.box, lattice.bonds, lattice.rest_lengths,
                            np.where(np.arange(len(lattice.bonds)) == 0, 2.5, 1.0))
    expected = linear_response(stiffer)
    assert float(ds["bulk_modulus"]) == pytest.approx(expected.bulk, rel=1e-10)
    assert float(ds["shear_modulus"]) == pytest.approx(expected.shear, rel=1e-10)
    moduli, floppy_modes = floppy_linear_response(lattice)  # the least-squares route on a rigid network: the LU route's
    assert floppy_modes == 0 and moduli.poisson == pytest.approx(1 / 3, abs=1e-12)
    assert moduli.bulk == pytest.approx(np.sqrt(3) / 2, rel=1e-12) and moduli.shear == pytest.approx(np.sqrt(3) / 4, rel=1e-12)


def test_a_data_file_with_column_names_for_comments_reads_as_lammps_reads_it(simulated, tmp_path):
    """Section comments that name no style (a generator's column names), atom style full, atoms in any order: the same
    network as the file that names its styles, and the log says how each section was read."""
    folder, _, ids, order, settings = simulated
    plain = read_data(folder / "run.data")
    positions = plain.positions - plain.lo
    path = write_data(tmp_path / "columns.data", positions, plain.box, plain.bonds, plain.stiffness, plain.rest_lengths, 1e4,
                      ids=plain.ids, order=order, column_comments=True)
    assert "Atoms # ['atomID'" in path.read_text()
    data = read_data(path)
    np.testing.assert_array_equal(data.ids, plain.ids)
    np.testing.assert_array_equal(data.positions, plain.positions)
    np.testing.assert_array_equal(data.bonds, plain.bonds)
    np.testing.assert_array_equal(data.stiffness, plain.stiffness)
    assert len(data.notes) == 2 and "read as full from its 7 columns" in data.notes[0] and "read as harmonic" in data.notes[1]
    assert plain.notes == ()


def test_metal_units_translate_time_so_the_run_reads_as_in_lj(simulated, tmp_path):
    """Our own lj run (unit mass) written as a metal run of 1e4 g/mol nodes: timestep and damping given in ps, the
    imported trajectory has the truth's times, frame spacing and fastest period in frames, and records the translation."""
    folder, trajectory, ids, order, settings = simulated
    plain = read_data(folder / "run.data")
    data = write_data(tmp_path / "metal.data", plain.positions - plain.lo, plain.box, plain.bonds, plain.stiffness, plain.rest_lengths,
                      1e4, ids=plain.ids, column_comments=True)
    tau = time_unit("metal", 1e4)
    assert tau == pytest.approx(1.01805, rel=1e-5)  # ps: sqrt(1e4 g/mol A^2 / eV)
    dump = dump_of(simulated, "xs ys", "metal.dump")
    output = tmp_path / "metal.nc"
    main(["trajectories", "import", str(dump), str(data), "--units", "metal", "-o", str(output),
          "--settings", json.dumps({"timestep": settings.timestep * tau, "damping": settings.damping * tau})])
    truth, imported = read_trajectory(trajectory), read_trajectory(output)
    np.testing.assert_allclose(imported["time"].values, truth["time"].values, rtol=1e-12)
    assert float(imported["fastest_period_frames"]) == pytest.approx(float(truth["fastest_period_frames"]), rel=1e-9)
    recorded = json.loads(imported.attrs["md_settings"])
    assert recorded["mass"] == 1.0 and recorded["timestep"] == pytest.approx(settings.timestep, rel=1e-12)
    assert recorded["damping"] == pytest.approx(settings.damping, rel=1e-12)
    assert imported.attrs["units"] == "metal" and imported.attrs["file_mass"] == 1e4 and "ps" in imported.attrs["time_unit"]


def test_the_schema_names_every_unit_system_densim_translates():
    from densim.config import schema_node

    assert sorted(schema_node("trajectories.units")["enum"]) == sorted(UNITS)


def _affine_dump(path, net: SpringNetwork, frames: int = 6, strain_per_frame: float = 2.5e-4, ids=None):
    """Frames of ``net`` compressed affinely along x (the transverse box fixed)."""
    scale = 1 - strain_per_frame * np.arange(frames)
    box = np.column_stack([net.box[0] * scale, np.full(frames, net.box[1])])
    positions = net.positions[None] * np.column_stack([scale, np.ones(frames)])[:, None, :]
    return write_dump(path, 250 * (1 + np.arange(frames)), positions, box, coordinates="xs ys", ids=ids)


def test_a_survey_imports_every_run_it_finds_and_says_why_one_was_refused(simulated, tmp_path, capsys):
    """Numbered folders as the study group publishes them: a run of ours, a floppy network and a network that does not
    span the box in y (its transverse box is not set by the network): found 3, imported 2, refused 1 with the reason."""
    folder, _, ids, order, settings = simulated
    plain = read_data(folder / "run.data")
    runs = tmp_path / "runs"
    (runs / "1").mkdir(parents=True)
    write_data(runs / "1/network.lmp", plain.positions - plain.lo, plain.box, plain.bonds, plain.stiffness, plain.rest_lengths, 1e4,
               ids=plain.ids, order=order, column_comments=True)
    dump_of(simulated, "xs ys", "survey.dump").rename(runs / "1/dump.lammpstrj")
    floppy, lattice = _floppy_lattice()
    strip = lattice.bonds[np.abs(lattice.positions[lattice.bonds[:, 1], 1] - lattice.positions[lattice.bonds[:, 0], 1]) < lattice.box[1] / 2]
    strip_net = SpringNetwork(lattice.positions, lattice.box, strip, np.ones(len(strip)), np.ones(len(strip)))
    for name, net in (("2", floppy), ("3", strip_net)):
        (runs / name).mkdir()
        write_data(runs / name / "network.lmp", net.positions, net.box, net.bonds, net.stiffness, net.rest_lengths, 1e4, column_comments=True)
        _affine_dump(runs / name / "dump.lammpstrj", net)
    table = tmp_path / "survey.csv"
    main(["trajectories", "survey", "--dumps", str(runs / "*/dump.lammpstrj"), "--data", str(runs / "*/network.lmp"), "--units", "metal",
          "--settings", json.dumps({"timestep": 0.01, "damping": 1.0}), "--strains", "0.0005", "0.001", "-o", str(table),
          "--output-dir", str(tmp_path / "imported")])
    text = capsys.readouterr().out
    assert "runs found: 3, imported: 2, refused: 1" in text
    assert "refused (1): no bond crosses the periodic boundary in y" in text
    assert "floppy networks: 1 of 2, with repeated bonds: 1" in text
    assert "box Poisson ratio at 0.0005 strain (2 runs)" in text and "box Poisson ratio at 0.001 strain (1 runs)" in text
    import pandas as pd

    rows = pd.read_csv(table, dtype={"run": str}).set_index("run")
    assert list(rows.index) == ["1", "2", "3"] and rows.loc["2", "floppy_modes"] == 1
    assert rows["refused"].isna().tolist() == [True, True, False]
    assert rows.loc["2", "nu_box_at_0.001"] == pytest.approx(0.0, abs=1e-12)  # affine frames at fixed Ly
    assert np.isnan(rows.loc["1", "nu_box_at_0.001"])  # past its last frame
    assert sorted(p.name for p in (tmp_path / "imported/trajectories").iterdir()) == ["0000.nc", "0001.nc"]


@pytest.mark.parametrize(("update", "message"), [
    ({"datasets": {"noi_pru": {"trajectories": {"units": "metal"}}}}, r"datasets\.noi_pru\.trajectories\.units: 'metal' for dataset noi_pru"),
    ({"trajectories": {"units": "real"}}, r"trajectories\.units: 'real' for dataset node_opt, whose runs are densim's own"),
], ids=["a dataset's", "the shared section's"])
def test_units_other_than_lj_are_refused_for_densims_own_runs(update, message, tmp_path):
    import yaml

    from densim.config import ConfigError, load_config
    from densim.experiments import resolve_config
    from tests.conftest import ROOT

    (tmp_path / "units.yaml").write_text(yaml.safe_dump(update))
    with pytest.raises(ConfigError, match=message):
        resolve_config(load_config([ROOT / "config.yaml", tmp_path / "units.yaml"]))


def test_runs_pair_by_name_and_an_excluded_run_leaves_the_others_in_order(tmp_path, monkeypatch):
    from densim.dumps import paired_files

    for run in ("1", "10", "2", "47"):
        (tmp_path / run).mkdir()
        for name in ("dump.lammpstrj", "network.lmp"):
            (tmp_path / run / name).write_text("")
    monkeypatch.chdir(tmp_path)
    pairs = paired_files("*/dump.lammpstrj", "*/network.lmp", exclude=["47/*"])
    assert pairs == [(f"{run}/dump.lammpstrj", f"{run}/network.lmp") for run in ("1", "10", "2")]
