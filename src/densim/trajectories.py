"""The trajectories stage: LAMMPS compression or impact of every network, and a per-dataset summary.

A trajectory file holds the unwrapped float64 positions of every frame, the box and strain per frame, the
potential and kinetic energy, the network it came from, the MD settings, the LAMMPS version, the protocol
(attribute ``protocol``) and the dataset's difficulty measures. Compression files add the Poisson ratio per frame
measured from the box and from positions; impact files (fixed box, where a Poisson ratio means nothing) add the
kicked and far strips, the far strip's displacement per frame and the front's arrival
(:func:`densim.observables.front_arrival`).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import xarray as xr

import scipy.sparse.linalg as spla

from densim.config import default
from densim.dumps import UNITS, read_thermo, time_unit
from densim.elasticity import hessian
from densim.md import MDRun, MDSettings, SimulationError
from densim.io import dataset_to_network
from densim.springs import SpringNetwork, minimum_image
from densim.observables import DIFFICULTY_DESCRIPTIONS, MIN_TRAJECTORY_FRAMES, difficulty, fastest_period_frames, local_predictability_r2, noise_over_signal
from densim.protocols import PROTOCOLS, Protocol, get_protocol, md_settings, protocol_of

def simulate(network: SpringNetwork, settings: MDSettings, name: str, progress=None, protocol: str | Protocol = "compression",
             own=None):
    """One LAMMPS run of ``protocol`` (:data:`densim.protocols.PROTOCOLS`; ``own``: its own settings) on one network;
    a failure names the network.

    Raises
    ------
    SimulationError
        If LAMMPS fails, or the timestep is unstable for the network's stiffest mode.
    """
    # velocity Verlet is stable while dt * omega_max < 2; past it LAMMPS blows up with a cryptic error
    lambda_max = float(spla.eigsh(hessian(network), k=1, which="LA", return_eigenvectors=False)[0])
    stability = settings.timestep * np.sqrt(lambda_max / settings.mass)
    if stability >= 1.9:
        raise SimulationError(
            f"network {name}: timestep {settings.timestep} is unstable for its stiffest mode "
            f"(timestep * sqrt(lambda_max / mass) = {stability:.2f}, must stay below 2); lower trajectories.timestep"
        )
    return _run_named(network, settings, name, progress, protocol, own)


def _run_named(network: SpringNetwork, settings: MDSettings, name: str, progress, protocol: str | Protocol, own, reseed=None):
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    try:
        return protocol.run(network, settings, own, progress=progress, reseed=reseed)
    except (SimulationError, ValueError) as err:
        raise type(err)(f"network {name}: {err}") from err


def athermal_twin(network: SpringNetwork, settings: MDSettings, run, name: str, protocol: str | Protocol = "compression", own=None):
    """The same run of ``protocol`` at temperature 0 (``run`` itself when it is athermal): what the thermal noise is
    measured against (:func:`densim.observables.noise_over_signal`). The run it twins has passed :func:`simulate`'s
    timestep check, which the temperature does not change."""
    if settings.temperature == 0:
        return run
    return _run_named(network, replace(settings, temperature=0.0), name, None, protocol, own)


def twin_seed(settings: MDSettings) -> int:
    """The Langevin seed of a run's thermal twin: the next one of ``fix langevin``'s range [1, 900000000]."""
    return settings.seed % 900_000_000 + 1


def thermal_twin(network: SpringNetwork, settings: MDSettings, name: str, protocol: str | Protocol = "compression", own=None):
    """The run's thermal twin: the same run of ``protocol``, bit for bit, up to the frame where rollouts start
    (:attr:`densim.md.MDSettings.rollout_start_frame` of the protocol's settings), then continued from that state
    (positions, velocities, box) with the thermostat reseeded (:func:`twin_seed`). Its distance from the run is what
    thermal noise alone does to a prediction from that frame: no simulator can do better on average (the ``thermal_twin``
    row of every evaluation). None at temperature 0, where there is no noise."""
    if settings.temperature == 0:
        return None
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    start = protocol.md_settings(settings, own).rollout_start_frame
    return _run_named(network, settings, name, None, protocol, own, reseed=(start, twin_seed(settings)))


def trajectory_dataset(network_ds: xr.Dataset, settings: MDSettings, run, attrs: dict, athermal=None,
                       protocol: str | Protocol = "compression", own=None, dataset: str | None = None, twin=None) -> xr.Dataset:
    """The trajectory file's contents from the network Dataset and a LAMMPS ``run`` of ``protocol`` (``own``: its own
    settings).

    Every protocol records positions, box, strain, energies and the difficulty measures; with the ``athermal`` twin
    of the run (:func:`athermal_twin`), the file also records ``noise_over_signal``; with its ``twin``
    (:func:`thermal_twin`), the twin's positions (``twin_positions``, the run's own up to ``twin_frame``). The protocol adds its own
    variables (:meth:`densim.protocols.Protocol.variables`: the Poisson ratio per frame of a compression; the strips,
    far displacement and front arrival of an impact), and ``md_settings`` holds what it records of its settings.

    The file belongs to ``dataset`` (by default the network's own; a regime variant names itself and keeps its
    networks' dataset as ``network_dataset``) and records where rollouts start (``rollout_start_frame``,
    :attr:`densim.md.MDSettings.rollout_start_frame`).
    """
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    md = protocol.md_settings(settings, own)
    time = np.arange(run.positions.shape[0]) * md.steps_per_frame * md.timestep
    keep = ["bonds", "rest_length", "stiffness", "diameter", "bulk_modulus", "shear_modulus", "isotropic_poisson_ratio", "uniaxial_poisson_ratio", "stiffness_matrix"]
    common = {
        "positions": (("time", "node", "xy"), run.positions, {"units": "small particle diameter", "description": "unwrapped node positions"}),
        "box": (("time", "xy"), run.box, {"units": "small particle diameter"}),
        "strain": (("time",), run.strain, {"description": "engineering axial strain Lx/Lx0 - 1"}),
        "potential_energy": (("time",), run.potential_energy, {"units": "lj energy"}),
        "kinetic_energy": (("time",), run.kinetic_energy, {"units": "lj energy", "description": "(mass / 2) sum |v|^2 at the frame's step"}),
        **{name: ((), value, {"description": DIFFICULTY_DESCRIPTIONS[name]})
           for name, value in difficulty([(run.positions, run.box[:, 0])]).items()},
        "local_predictability_r2": ((), local_predictability_r2([(run.positions, run.box, network_ds["bonds"].values,
                                                                  network_ds["rest_length"].values, network_ds["stiffness"].values)]),
                                    {"description": DIFFICULTY_DESCRIPTIONS["local_predictability_r2"]}),
        "fastest_period_frames": ((), fastest_period_frames(dataset_to_network(network_ds), md.mass, md.steps_per_frame * md.timestep),
                                  {"units": "frame", "description": DIFFICULTY_DESCRIPTIONS["fastest_period_frames"]}),
        **({} if athermal is None else {"noise_over_signal": (
            (), noise_over_signal(run.positions, athermal.positions, run.box[:, 0]),
            {"description": DIFFICULTY_DESCRIPTIONS["noise_over_signal"]})}),
        **({} if twin is None else {"twin_positions": (("time", "node", "xy"), twin.positions, {
            "units": "small particle diameter", "twin_frame": md.rollout_start_frame, "twin_seed": twin_seed(md),
            "description": "the thermal twin: the same run up to frame twin_frame, then with the thermostat reseeded "
                           "(densim.trajectories.thermal_twin)"})}),
    }
    ds = xr.Dataset(
        {**common, **protocol.variables(network_ds, run, own)},
        coords={"time": ("time", time, {"units": "lj time"}), "xy": ["x", "y"]},
        attrs={
            "protocol": protocol.name,
            "dataset": dataset or network_ds.attrs["dataset"],
            "network_dataset": network_ds.attrs["dataset"],
            "network": network_ds.attrs["network"],
            "rollout_start_frame": md.rollout_start_frame,
            "frame_time": md.frame_time,
            "generator": network_ds.attrs["generator"],
            "md_settings": json.dumps(protocol.record(settings, own), sort_keys=True),
            "lammps_version": int(run.lammps_version),
            **attrs,
        },
    )
    return xr.merge([ds, network_ds[keep]], combine_attrs="override")


#: The ``trajectories`` keys an import reads (the files say the rest: frames, frame spacing, mass, strain): ``units``,
#: the LAMMPS unit system of the files, and ``timestep`` and ``damping`` in its time unit.
IMPORT_KEYS = ("units", "dynamics", "timestep", "damping", "rollout_start")


def import_trajectory(dump, network_ds: xr.Dataset, section: dict, attrs: dict, dataset: str | None = None) -> xr.Dataset:
    """The trajectory file's contents from a LAMMPS text dump (:class:`densim.dumps.Dump`) of a compression along x of
    the network in ``network_ds`` (:func:`densim.networks.imported_network`, atoms matched by id).

    Positions are moved to frame 0's box corner and unwrapped (by the dump's image flags or unwrapped coordinates,
    else by continuity: a node moves less than half a box per frame), each node by whole boxes so that it starts
    inside the box, as a simulated trajectory does. The box is the dump's per frame, the strain ``Lx / Lx0 - 1``, the
    potential energy that of the springs, the kinetic energy ``(m / 2) sum |v|^2`` where the dump has velocities (NaN
    otherwise), and the Poisson ratio per frame from the box and from positions, as for a simulated compression. The
    frame spacing in MD steps comes from the dump's steps, the node mass from the data file, the timestep and the
    damping time (which places the rollout start) from ``section`` (the dataset's ``trajectories`` section), in the
    time unit of the files' LAMMPS ``units`` (``section["units"]``, default ``lj``).

    Time is translated to densim's unit ``tau = sqrt(m L^2 / E)`` (:func:`densim.dumps.time_unit`), in which the node
    mass is 1 and lengths, energies and spring constants keep the files' units, so that times in ``t0 = sqrt(m / k)``
    (frames per fastest period, damping times) read as for densim's own runs; the file records the translation
    (attributes ``units``, ``time_unit``, ``file_mass``).

    Raises
    ------
    ValueError
        If the dump holds fewer than four frames, unevenly spaced frames, or other atoms than the network, or the
        units are unknown.
    """
    steps = np.diff(dump.timesteps)
    if len(dump.timesteps) < MIN_TRAJECTORY_FRAMES:
        raise ValueError(f"{len(dump.timesteps)} frames: a trajectory needs at least {MIN_TRAJECTORY_FRAMES} (the linear floor of "
                         "densim.observables.difficulty, history 2)")
    uneven = np.flatnonzero(steps != steps[0])
    if steps[0] <= 0 or uneven.size:
        frame = int(uneven[0]) + 1 if uneven.size else 1
        raise ValueError(f"frames are not evenly spaced in MD steps: frame {frame} is {int(steps[frame - 1])} steps after the one "
                         f"before, frame 1 {int(steps[0])}")
    ids = network_ds["atom_id"].values if "atom_id" in network_ds else np.arange(1, network_ds.sizes["node"] + 1)
    if not np.array_equal(dump.ids, ids):
        raise ValueError(f"the dump's {len(dump.ids)} atom ids are not the network's {len(ids)}")
    units, file_mass = section.get("units", default("trajectories.units")), float(network_ds.attrs["mass"])
    tau = time_unit(units, file_mass)
    box = dump.box
    positions = dump.positions - dump.lo[0]
    if dump.wrapped:
        for t in range(1, len(positions)):
            step = positions[t] - positions[t - 1]
            positions[t] = positions[t - 1] + step - np.round(step / box[t]) * box[t]
    positions -= np.floor(positions[0] / box[0])[None] * box[:, None, :]
    bonds, rest, stiffness = (network_ds[name].values for name in ("bonds", "rest_length", "stiffness"))
    lengths = np.linalg.norm(minimum_image(positions[:, bonds[:, 1]] - positions[:, bonds[:, 0]], box[:, None, :]), axis=-1)
    # unit node mass: (1 / 2) |v tau|^2 in the files' energy unit
    kinetic = (0.5 * ((dump.velocities * tau)**2).sum(axis=(1, 2)) if dump.velocities is not None else np.full(len(positions), np.nan))
    strain = box[:, 0] / box[0, 0] - 1.0
    run = MDRun(positions=positions, box=box, strain=strain, potential_energy=(0.5 * stiffness * (lengths - rest) ** 2).sum(axis=1),
                kinetic_energy=kinetic, lammps_version=0)
    final = max(abs(float(strain[-1])), np.finfo(float).tiny)
    given = {key: value for key, value in section.items() if key in IMPORT_KEYS and key != "units"}
    given.update({key: given[key] / tau for key in ("timestep", "damping") if given.get(key) is not None})
    settings = replace(md_settings(given), frames=len(positions), steps_per_frame=int(steps[0]), mass=1.0, strain=final,
                       strain_per_frame=final / (len(positions) - 1))
    ds = trajectory_dataset(network_ds, settings, run, attrs, protocol="compression", dataset=dataset)
    known = ("frames", "steps_per_frame", "mass", "strain", *IMPORT_KEYS[1:])
    del ds.attrs["lammps_version"]
    ds.attrs.update({"md_settings": json.dumps({key: getattr(settings, key) for key in known}, sort_keys=True),
                     "source": "lammps dump", "first_step": int(dump.timesteps[0]), "units": units, "file_mass": file_mass,
                     "time_unit": f"{tau!r} {UNITS[units][2]}: tau = sqrt(m L^2 / E) of node mass m = {file_mass!r}; times "
                                  "in tau, node mass 1, lengths, energies and spring constants in the files' units"})
    return ds


def box_poisson_ratio_at(ds: xr.Dataset, strain: float) -> float:
    """The box Poisson ratio of a compression at compressive ``strain``, interpolated between frames; the last frame's
    where ``strain`` lies less than a frame's strain past it (a dump that starts a frame after the deformation does,
    as LAMMPS's does after a minimisation), NaN further on."""
    compressive = -ds["strain"].values
    if strain > compressive[-1] + (compressive[-1] - compressive[-2]):
        return np.nan
    return float(np.interp(strain, compressive, ds["poisson_ratio_box"].values))


#: The difficulty measures a survey row reads from each imported trajectory file.
SURVEY_MEASURES = ("acceleration_over_velocity", "linear_floor_r2", "local_predictability_r2", "fastest_period_frames")
#: The measures a survey compares between a run and densim's runs of its network (:func:`run_measures`).
COMPARED = ("temperature", "acceleration_over_velocity", "linear_floor_r2", "local_predictability_r2")


def kinetic_temperature(ds: xr.Dataset) -> np.ndarray:
    """``k_B T`` of each frame from its kinetic energy (unit node mass): ``KE / (N - 1)``, the ``2N - 2`` degrees of
    freedom that LAMMPS counts in 2D. NaN where the file has no kinetic energy (a dump without velocities)."""
    return ds["kinetic_energy"].values / (ds.sizes["node"] - 1)


def run_measures(ds: xr.Dataset, strains, temperature: float | None = None) -> dict[str, float]:
    """What a survey compares of one compression: its mean kinetic temperature after the first tenth of its frames
    (``temperature`` where given: a log's, for a dump without velocities), its difficulty measures
    (:data:`COMPARED`) and its box Poisson ratio at ``strains`` (:func:`box_poisson_ratio_at`)."""
    frames = ds.sizes["time"]
    own = float(np.mean(kinetic_temperature(ds)[frames // 10:]))
    return {"temperature": own if temperature is None else temperature, **{name: float(ds[name]) for name in COMPARED[1:]},
            **{f"nu_box_at_{strain:g}": box_poisson_ratio_at(ds, strain) for strain in strains}}


def log_temperature(log, boltzmann: float) -> float:
    """The mean ``k_B T`` of a LAMMPS log's last run after its first tenth (its thermo ``Temp``, in the log's own
    temperature unit, times ``boltzmann``)."""
    temp = read_thermo(log)["Temp"]
    return float(np.mean(temp[len(temp) // 10:])) * boltzmann


def rerun(network_ds: xr.Dataset, dynamics: str, seeds) -> list[xr.Dataset]:
    """densim's own LAMMPS compression of an imported network in the regime ``dynamics`` (:data:`densim.md.REGIMES`),
    once per Langevin seed: the trajectory files' contents, to set beside the imported run (``densim trajectories
    survey --rerun``). The network keeps the files' units (lengths, spring constants), its node mass is 1."""
    network = dataset_to_network(network_ds)
    name = f"{network_ds.attrs['dataset']}/{network_ds.attrs['network']}"
    runs = []
    for seed in seeds:
        settings = MDSettings(dynamics=dynamics, seed=seed)
        runs.append(trajectory_dataset(network_ds, settings, simulate(network, settings, name), {}))
    return runs


def survey_row(dump, data, imported: tuple[xr.Dataset, xr.Dataset] | None, refused: str, strains, temperature: float | None = None,
               reruns: list[xr.Dataset] = ()) -> dict:
    """One run of an import survey (``densim trajectories survey``): its files and, ``imported`` (its network and
    trajectory Datasets), its network's size, repeated bonds and floppy modes, frames, frame spacing in
    ``t0 = sqrt(m / k)`` (median ``k``), fastest period in frames, linear-response Poisson ratio (``C_xxyy / C_yyyy``)
    and :func:`run_measures` (``temperature``: ``k_B T`` from its log, in energy units), and with ``reruns`` (densim's
    runs of its network, :func:`rerun`) the mean and standard deviation of theirs (``ours_*``); refused, the reason."""
    row = {"dump": str(dump), "data": str(data)}
    if imported is None:
        return {**row, "refused": refused}
    network_ds, ds = imported
    frame_t0 = float(ds.attrs["frame_time"]) * float(np.sqrt(np.median(ds["stiffness"].values)))
    row.update({"nodes": ds.sizes["node"], "bonds": ds.sizes["bond"], "repeated_bonds": int(network_ds.attrs["repeated_bonds"]),
                "floppy_modes": int(network_ds.attrs["floppy_modes"]), "frames": ds.sizes["time"],
                "final_strain": float(-ds["strain"].values[-1]), "frame_t0": frame_t0,
                "fastest_period_frames": float(ds["fastest_period_frames"]), "nu_linear_response": float(ds["uniaxial_poisson_ratio"]),
                **run_measures(ds, strains, temperature)})
    if reruns:
        ours = pd.DataFrame([run_measures(run, strains) for run in reruns])
        row.update({f"ours_{name}": float(ours[name].mean()) for name in ours})
        row.update({f"ours_{name}_std": float(ours[name].std(ddof=1)) if len(ours) > 1 else np.nan for name in ours})
    return {**row, "refused": refused}


def import_survey(rows: list[dict], strains) -> tuple[pd.DataFrame, str]:
    """The table of an import survey and its text: the runs, then how many were found, imported and refused (by
    reason), and the distribution (median, quartiles, range) of the box Poisson ratio at each strain."""
    table = pd.DataFrame(rows)
    table = table[[*[column for column in table if column != "refused"], "refused"]].fillna({"refused": ""})
    # name each run by what tells its dump from the others' (the folder of 1/compression_sim/deform_dump.lammpstrj)
    paths = table["dump"].tolist()
    head, tail = len(os.path.commonprefix(paths)), len(os.path.commonprefix([path[::-1] for path in paths]))
    head, tail = (0, 0) if len(paths) == 1 else (head, tail)
    table.insert(0, "run", [path[head:len(path) - tail] for path in paths])
    refused = table[table["refused"] != ""]
    imported = table[table["refused"] == ""]
    shown = [column for column in table if column not in ("dump", "data") and not column.endswith("_std")]
    lines = [table[shown].to_string(index=False, float_format=lambda x: f"{x:.4g}"), "",
             f"runs found: {len(table)}, imported: {len(imported)}, refused: {len(refused)}"]
    reasons = refused["refused"].str.replace(r"^\S+: ", "", regex=True).value_counts()
    lines += [f"  refused ({count}): {reason}" for reason, count in reasons.items()]
    if len(imported):
        lines.append(f"floppy networks: {int((imported['floppy_modes'] > 0).sum())} of {len(imported)}, with repeated bonds: "
                     f"{int((imported['repeated_bonds'] > 0).sum())}")
        for strain in strains:
            nu = imported[f"nu_box_at_{strain:g}"].dropna()
            if len(nu):
                q = np.quantile(nu, [0, 0.25, 0.5, 0.75, 1])
                lines.append(f"box Poisson ratio at {strain:.3g} strain ({len(nu)} runs): median {q[2]:.3f}, quartiles {q[1]:.3f} "
                             f"to {q[3]:.3f}, range {q[0]:.3f} to {q[4]:.3f}")
    ours = [column[len("ours_"):] for column in table if column.startswith("ours_") and not column.endswith("_std")]
    if ours and len(imported):
        lines += ["", side_by_side(imported, ours)]
    return table, "\n".join(lines)


def side_by_side(imported: pd.DataFrame, measures: list[str]) -> str:
    """The survey's runs beside densim's runs of their networks: per measure, the median over runs of the run's
    value and of densim's mean, the median spread of densim's seeds, and in how many runs the run's value lies within
    two of densim's seed standard deviations of densim's mean."""
    lines = ["side by side (median over runs; within: the run within 2 seed std of densim's mean):",
             f"{'measure':<28}{'runs':>10}{'densim':>10}{'seed std':>10}{'within':>10}"]
    for name in measures:
        theirs, mean, std = imported[name], imported[f"ours_{name}"], imported[f"ours_{name}_std"]
        valid = theirs.notna() & mean.notna()
        within = int((np.abs(theirs - mean)[valid] <= 2 * std[valid]).sum())
        lines.append(f"{name:<28}{theirs[valid].median():>10.4g}{mean[valid].median():>10.4g}{std[valid].median():>10.3g}"
                     f"{f'{within}/{int(valid.sum())}':>10}")
    return "\n".join(lines)


def summary(trajectories: list[xr.Dataset], small_strain: float = default("trajectories.small_strain"), unions: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per-dataset summary of trajectory files.

    Columns: dataset, networks, frames, final strain, range of the final box nu, agreement of positions nu
    (zero-stress route) and of slope nu with box nu over all strained frames (R^2, largest difference), agreement
    of the small-strain compression nu with linear response (C_xxyy/C_yyyy for this protocol, and the isotropic
    (B - G)/(B + G)), and the dataset's difficulty pooled over its trajectories (:func:`densim.observables.difficulty`:
    linear floor R^2, affine share of the acceleration, rms residual acceleration over rms residual velocity) with
    the mean thermal noise over signal (NaN unless every file records it), and the median over its trajectories of
    each one's local predictability R^2 (:func:`densim.observables.local_predictability_r2`) and fastest vibration
    period in frames (:func:`densim.observables.fastest_period_frames`), NaN unless every file records them.
    The Poisson columns and the rest that belong to a protocol come from it (:meth:`densim.protocols.Protocol.summary`):
    impact datasets have NaN in the Poisson columns (:data:`densim.protocols.POISSON_COLUMNS`) and add the front's
    arrival frame over their trajectories (median, min, max), columns that only appear when some dataset is an impact
    one. Each union of ``unions`` (name -> member datasets) gets a row over its members' trajectories.

    Raises
    ------
    ValueError
        If a union names a dataset without trajectories, or a dataset mixes protocols.
    """
    rows = []
    by_dataset: dict[str, list[xr.Dataset]] = {}
    for ds in trajectories:
        by_dataset.setdefault(ds.attrs["dataset"], []).append(ds)
    for union, members in (unions or {}).items():
        missing = [member for member in members if member not in by_dataset]
        if missing:
            raise ValueError(f"union {union}: no trajectories of {missing}")
        by_dataset[union] = [ds for member in members for ds in by_dataset[member]]
    for dataset, group in sorted(by_dataset.items()):
        protocols = sorted({protocol_of(ds).name for ds in group})
        if len(protocols) > 1:
            raise ValueError(f"dataset {dataset}: trajectories of several protocols {protocols}")
        rows.append(
            {
                "dataset": dataset,
                "networks": len(group),
                "frames": int(np.median([ds.sizes["time"] for ds in group])),
                "final_strain": float(np.median([ds["strain"].values[-1] for ds in group])),
                **PROTOCOLS[protocols[0]].summary(group, small_strain),
                **difficulty([(ds["positions"].values, ds["box"].values[:, 0]) for ds in group]),
                "noise_over_signal": float(np.mean([ds["noise_over_signal"] for ds in group])) if all("noise_over_signal" in ds for ds in group) else np.nan,
                **{name: float(np.median([float(ds[name]) for ds in group])) if all(name in ds for ds in group) else np.nan
                   for name in ("local_predictability_r2", "fastest_period_frames")},
            }
        )
    return pd.DataFrame(rows)
