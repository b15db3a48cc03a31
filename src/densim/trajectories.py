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
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import xarray as xr

import scipy.sparse.linalg as spla

from densim.config import ConfigError, typed_config
from densim.elasticity import hessian
from densim.compression import CompressionSettings, ImpactSettings, SimulationError, compress, impact, impact_md_settings, impact_strips
from densim.io import dataset_to_network
from densim.network import SpringNetwork
from densim.observables import (DIFFICULTY_DESCRIPTIONS, box_strain, difficulty, far_displacement, fastest_period_frames, front_arrival,
                                local_predictability_r2, noise_over_signal,
                                poisson_ratio_from_box, poisson_ratio_from_positions, poisson_ratio_from_slope, r_squared)

#: The trajectory protocols: the value of a dataset's ``protocol`` key and of a trajectory file's ``protocol`` attribute.
PROTOCOLS = ("compression", "impact")


def compression_settings(section: dict) -> CompressionSettings:
    """Compression settings from the ``trajectories`` config section, naming any bad key.

    The ``impact`` subsection is :func:`impact_settings`'s.
    """
    return typed_config(CompressionSettings, {key: value for key, value in section.items() if key != "impact"}, "trajectories")


def impact_settings(section: dict) -> ImpactSettings:
    """Impact settings from the ``impact`` subsection of the ``trajectories`` config section (defaults when absent),
    naming any bad key (``trajectories.impact.<key>``)."""
    kick = section.get("impact", {})
    if not isinstance(kick, dict):
        raise ConfigError(f"trajectories.impact: expected a mapping, got {kick!r}")
    return typed_config(ImpactSettings, kick, "trajectories.impact")


def protocol_of(ds: xr.Dataset) -> str:
    """The protocol of a trajectory file (files written before impact existed are compressions)."""
    return ds.attrs.get("protocol", "compression")


def simulate(network: SpringNetwork, settings: CompressionSettings, name: str, progress=None, kick: ImpactSettings | None = None):
    """Compress one network in LAMMPS, or with ``kick`` run the impact protocol; a failure names the network.

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
    return _run_named(network, settings, name, progress, kick)


def _run_named(network: SpringNetwork, settings: CompressionSettings, name: str, progress=None, kick: ImpactSettings | None = None):
    try:
        return compress(network, settings, progress=progress) if kick is None else impact(network, settings, kick, progress=progress)
    except (SimulationError, ValueError) as err:
        raise type(err)(f"network {name}: {err}") from err


def athermal_twin(network: SpringNetwork, settings: CompressionSettings, run, name: str, kick: ImpactSettings | None = None):
    """The same run (compression, or impact with ``kick``) at temperature 0 (``run`` itself when it is athermal):
    what the thermal noise is measured against (:func:`densim.observables.noise_over_signal`). The run it twins has
    passed :func:`simulate`'s timestep check, which the temperature does not change."""
    if settings.temperature == 0:
        return run
    return _run_named(network, replace(settings, temperature=0.0), name, kick=kick)


def trajectory_dataset(network_ds: xr.Dataset, settings: CompressionSettings, run, attrs: dict, athermal=None,
                       kick: ImpactSettings | None = None, dataset: str | None = None) -> xr.Dataset:
    """The trajectory file's contents from the network Dataset and a LAMMPS ``run``: a compression, or with ``kick``
    an impact (:func:`densim.compression.impact`).

    Both protocols record positions, box, strain, energies and the difficulty measures; with the ``athermal`` twin
    of the run (:func:`athermal_twin`), the file also records ``noise_over_signal``. Compressions add the Poisson
    ratio per frame; impacts add the strips (``kicked``, ``far``), ``far_displacement`` and the front's arrival
    (``arrival_frame`` at ``arrival_threshold``), and their ``md_settings`` hold the MD settings the run used
    (:func:`densim.compression.impact_md_settings`) with the kick under ``impact``.

    The file belongs to ``dataset`` (by default the network's own; a regime variant names itself and keeps its
    networks' dataset as ``network_dataset``) and records where rollouts start (``rollout_start_frame``,
    :attr:`densim.compression.CompressionSettings.rollout_start_frame`).
    """
    md = settings if kick is None else impact_md_settings(settings, kick)
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
    }
    protocol_vars = _compression_variables(network_ds, run) if kick is None else _impact_variables(run, kick)
    ds = xr.Dataset(
        {**common, **protocol_vars},
        coords={"time": ("time", time, {"units": "lj time"}), "xy": ["x", "y"]},
        attrs={
            "densim_kind": "trajectory",
            "protocol": "compression" if kick is None else "impact",
            "dataset": dataset or network_ds.attrs["dataset"],
            "network_dataset": network_ds.attrs["dataset"],
            "network": network_ds.attrs["network"],
            "rollout_start_frame": md.rollout_start_frame,
            "frame_time": md.frame_time,
            "generator": network_ds.attrs["generator"],
            "md_settings": json.dumps({**asdict(md), **({} if kick is None else {"impact": asdict(kick)})}, sort_keys=True),
            "lammps_version": int(run.lammps_version),
            **attrs,
        },
    )
    return xr.merge([ds, network_ds[keep]], combine_attrs="override")


def _compression_variables(network_ds: xr.Dataset, run) -> dict:
    """The Poisson ratio of every frame of a compression, from the box, from positions and from the slope."""
    return {
        "poisson_ratio_box": (("time",), poisson_ratio_from_box(run.box), {"description": "-(Ly/Ly0 - 1)/(Lx/Lx0 - 1)"}),
        "poisson_ratio_positions": (
            ("time",),
            poisson_ratio_from_positions(run.positions, run.box[:, 0], run.box[0], network_ds["bonds"].values,
                                         network_ds["rest_length"].values, network_ds["stiffness"].values),
            {"description": "from positions and the network: transverse box at zero transverse stress (densim.observables)"},
        ),
        "poisson_ratio_slope": (
            ("time",),
            poisson_ratio_from_slope(run.positions, run.strain, run.box[0]),
            {"description": "least-squares slope of transverse displacements over the imposed axial strain"},
        ),
    }


def _impact_variables(run, kick: ImpactSettings) -> dict:
    """The strips of an impact, the far strip's displacement and the front's arrival."""
    kicked, far = impact_strips(run.positions[0], run.box[0], kick)
    displacement = far_displacement(run.positions, far)
    threshold = kick.arrival_fraction * float(displacement.max())
    return {
        "kicked": (("node",), kicked, {"description": "nodes of the kicked strip (densim.compression.impact_strips)"}),
        "far": (("node",), far, {"description": "nodes of the far strip, centred half a box from the kicked one"}),
        "far_displacement": (("time",), displacement, {"units": "small particle diameter",
                                                        "description": "mean over far nodes of |x(t) - x(0)| (densim.observables.far_displacement)"}),
        "arrival_frame": ((), front_arrival(displacement, threshold), {
            "units": "frame", "description": "first (interpolated, fractional) frame index at which far_displacement reaches arrival_threshold"}),
        "arrival_threshold": ((), threshold, {"units": "small particle diameter",
                                              "description": "trajectories.impact.arrival_fraction times the largest far_displacement"}),
    }


def small_strain_poisson_ratio(box: np.ndarray, max_strain: float) -> float:
    """Poisson ratio of the first frames, ``|eps_xx| <= max_strain``, as a least-squares slope through 0."""
    strain = box_strain(box)
    small = (np.abs(strain[:, 0]) <= max_strain) & (strain[:, 0] != 0)
    if not small.any():
        small = strain[:, 0] != 0
        small[np.argmax(small) + 1 :] = False  # only the first strained frame
    ex, ey = strain[small, 0], strain[small, 1]
    return float(-(ex @ ey) / (ex @ ex))


#: The Poisson-ratio columns of :func:`summary`, NaN in the rows of impact datasets (fixed box).
POISSON_COLUMNS = ("nu_min", "nu_max", "positions_vs_box_r2", "positions_vs_box_max_diff", "slope_vs_box_r2", "slope_vs_box_max_diff",
                   "compression_vs_uniaxial_r2", "compression_vs_uniaxial_max_diff", "compression_vs_isotropic_r2",
                   "compression_vs_isotropic_max_diff")


def summary(trajectories: list[xr.Dataset], small_strain: float = 0.005, unions: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per-dataset summary of trajectory files.

    Columns: dataset, networks, frames, final strain, range of the final box nu, agreement of positions nu
    (zero-stress route) and of slope nu with box nu over all strained frames (R^2, largest difference), agreement
    of the small-strain compression nu with linear response (C_xxyy/C_yyyy for this protocol, and the isotropic
    (B - G)/(B + G)), and the dataset's difficulty pooled over its trajectories (:func:`densim.observables.difficulty`:
    linear floor R^2, affine share of the acceleration, rms residual acceleration over rms residual velocity) with
    the mean thermal noise over signal (NaN unless every file records it), and the median over its trajectories of
    each one's local predictability R^2 (:func:`densim.observables.local_predictability_r2`) and fastest vibration
    period in frames (:func:`densim.observables.fastest_period_frames`), NaN unless every file records them.
    Impact datasets have NaN in the Poisson columns (:data:`POISSON_COLUMNS`) and add the front's arrival frame
    over their trajectories (median, min, max), columns that only appear when some dataset is an impact one. Each union of ``unions`` (name -> member
    datasets) gets a row over its members' trajectories.

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
        protocols = sorted({protocol_of(ds) for ds in group})
        if len(protocols) > 1:
            raise ValueError(f"dataset {dataset}: trajectories of several protocols {protocols}")
        rows.append(
            {
                "dataset": dataset,
                "networks": len(group),
                "frames": int(np.median([ds.sizes["time"] for ds in group])),
                "final_strain": float(np.median([ds["strain"].values[-1] for ds in group])),
                **(_poisson_columns(group, small_strain) if protocols == ["compression"] else dict.fromkeys(POISSON_COLUMNS, np.nan)),
                **difficulty([(ds["positions"].values, ds["box"].values[:, 0]) for ds in group]),
                "noise_over_signal": float(np.mean([ds["noise_over_signal"] for ds in group])) if all("noise_over_signal" in ds for ds in group) else np.nan,
                **{name: float(np.median([float(ds[name]) for ds in group])) if all(name in ds for ds in group) else np.nan
                   for name in ("local_predictability_r2", "fastest_period_frames")},
                **(_arrival_columns(group) if protocols == ["impact"] else {}),
            }
        )
    return pd.DataFrame(rows)


def _poisson_columns(group: list[xr.Dataset], small_strain: float) -> dict[str, float]:
    """The Poisson columns of :func:`summary` for the compression trajectories of one dataset."""
    box_nu = np.concatenate([ds["poisson_ratio_box"].values[1:] for ds in group])
    pos_nu = np.concatenate([ds["poisson_ratio_positions"].values[1:] for ds in group])
    slope_nu = np.concatenate([ds["poisson_ratio_slope"].values[1:] for ds in group])
    final = np.array([ds["poisson_ratio_box"].values[-1] for ds in group])
    compression = np.array([small_strain_poisson_ratio(ds["box"].values, small_strain) for ds in group])
    uniaxial = np.array([float(ds["uniaxial_poisson_ratio"]) for ds in group])
    isotropic = np.array([float(ds["isotropic_poisson_ratio"]) for ds in group])
    return {
        "nu_min": float(final.min()),
        "nu_max": float(final.max()),
        "positions_vs_box_r2": r_squared(box_nu, pos_nu),
        "positions_vs_box_max_diff": float(np.nanmax(np.abs(box_nu - pos_nu))),
        "slope_vs_box_r2": r_squared(box_nu, slope_nu),
        "slope_vs_box_max_diff": float(np.nanmax(np.abs(box_nu - slope_nu))),
        "compression_vs_uniaxial_r2": r_squared(uniaxial, compression),
        "compression_vs_uniaxial_max_diff": float(np.max(np.abs(uniaxial - compression))),
        "compression_vs_isotropic_r2": r_squared(isotropic, compression),
        "compression_vs_isotropic_max_diff": float(np.max(np.abs(isotropic - compression))),
    }


def _arrival_columns(group: list[xr.Dataset]) -> dict[str, float]:
    """Median, min and max of the front's arrival frame over the impact trajectories of one dataset (NaNs, fronts
    that never arrived, are left out; NaN when none arrived)."""
    arrival = np.array([float(ds["arrival_frame"]) for ds in group])
    arrival = arrival[np.isfinite(arrival)]
    if len(arrival) == 0:
        return dict.fromkeys(("arrival_frame_median", "arrival_frame_min", "arrival_frame_max"), np.nan)
    return {"arrival_frame_median": float(np.median(arrival)), "arrival_frame_min": float(arrival.min()),
            "arrival_frame_max": float(arrival.max())}
