"""The trajectories stage: LAMMPS compression of every network, and a per-dataset summary.

A trajectory file holds the unwrapped float64 positions of every frame, the box and strain per frame, the
network it came from, its Poisson ratio per frame measured from the box and from positions, the MD settings
and the LAMMPS version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import xarray as xr

import scipy.sparse.linalg as spla

from densim.config import typed_config
from densim.elasticity import hessian
from densim.compression import CompressionSettings, SimulationError, compress
from densim.network import SpringNetwork
from densim.observables import DIFFICULTY_DESCRIPTIONS, box_strain, difficulty, noise_over_signal, poisson_ratio_from_box, poisson_ratio_from_positions, poisson_ratio_from_slope, r_squared


def compression_settings(section: dict) -> CompressionSettings:
    """Compression settings from the ``trajectories`` config section, naming any bad key."""
    return typed_config(CompressionSettings, section, "trajectories")


def simulate(network: SpringNetwork, settings: CompressionSettings, name: str, progress=None):
    """Compress one network in LAMMPS; a failure names the network.

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
    return _compress_named(network, settings, name, progress)


def _compress_named(network: SpringNetwork, settings: CompressionSettings, name: str, progress=None):
    try:
        return compress(network, settings, progress=progress)
    except SimulationError as err:
        raise SimulationError(f"network {name}: {err}") from err


def athermal_twin(network: SpringNetwork, settings: CompressionSettings, run, name: str):
    """The same compression at temperature 0 (``run`` itself when it is athermal): what the thermal noise is
    measured against (:func:`densim.observables.noise_over_signal`). The run it twins has passed
    :func:`simulate`'s timestep check, which the temperature does not change."""
    if settings.temperature == 0:
        return run
    return _compress_named(network, replace(settings, temperature=0.0), name)


def trajectory_dataset(network_ds: xr.Dataset, settings: CompressionSettings, run, attrs: dict, athermal=None) -> xr.Dataset:
    """The trajectory file's contents from the network Dataset and a LAMMPS compression ``run``.

    With the ``athermal`` twin of the run (:func:`athermal_twin`), the file also records ``noise_over_signal``.
    """
    frames = run.positions.shape[0]
    time = np.arange(frames) * settings.steps_per_frame * settings.timestep
    keep = ["bonds", "rest_length", "stiffness", "diameter", "bulk_modulus", "shear_modulus", "isotropic_poisson_ratio", "uniaxial_poisson_ratio", "stiffness_matrix"]
    network_vars = network_ds[keep]
    ds = xr.Dataset(
        {
            "positions": (("time", "node", "xy"), run.positions, {"units": "small particle diameter", "description": "unwrapped node positions"}),
            "box": (("time", "xy"), run.box, {"units": "small particle diameter"}),
            "strain": (("time",), run.strain, {"description": "engineering axial strain Lx/Lx0 - 1"}),
            "potential_energy": (("time",), run.potential_energy, {"units": "lj energy"}),
            "poisson_ratio_box": (("time",), poisson_ratio_from_box(run.box), {"description": "-(Ly/Ly0 - 1)/(Lx/Lx0 - 1)"}),
            "poisson_ratio_positions": (
                ("time",),
                poisson_ratio_from_positions(run.positions, run.box[:, 0], run.box[0], network_ds["bonds"].values,
                                             network_ds["rest_length"].values, network_ds["stiffness"].values),
                {"description": "from positions and the network: transverse box at zero transverse stress (densim.observables)"},
            ),
            **{name: ((), value, {"description": DIFFICULTY_DESCRIPTIONS[name]})
               for name, value in difficulty([(run.positions, run.box[:, 0])]).items()},
            **({} if athermal is None else {"noise_over_signal": (
                (), noise_over_signal(run.positions, athermal.positions, run.box[:, 0]),
                {"description": DIFFICULTY_DESCRIPTIONS["noise_over_signal"]})}),
            "poisson_ratio_slope": (
                ("time",),
                poisson_ratio_from_slope(run.positions, run.strain, run.box[0]),
                {"description": "least-squares slope of transverse displacements over the imposed axial strain"},
            ),
        },
        coords={"time": ("time", time, {"units": "lj time"}), "xy": ["x", "y"]},
        attrs={
            "densim_kind": "trajectory",
            "dataset": network_ds.attrs["dataset"],
            "network": network_ds.attrs["network"],
            "generator": network_ds.attrs["generator"],
            "md_settings": json.dumps(asdict(settings), sort_keys=True),
            "lammps_version": int(run.lammps_version),
            **attrs,
        },
    )
    return xr.merge([ds, network_vars], combine_attrs="override")


def small_strain_poisson_ratio(box: np.ndarray, max_strain: float) -> float:
    """Poisson ratio of the first frames, ``|eps_xx| <= max_strain``, as a least-squares slope through 0."""
    strain = box_strain(box)
    small = (np.abs(strain[:, 0]) <= max_strain) & (strain[:, 0] != 0)
    if not small.any():
        small = strain[:, 0] != 0
        small[np.argmax(small) + 1 :] = False  # only the first strained frame
    ex, ey = strain[small, 0], strain[small, 1]
    return float(-(ex @ ey) / (ex @ ex))


def summary(trajectories: list[xr.Dataset], small_strain: float = 0.005, unions: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per-dataset summary of trajectory files.

    Columns: dataset, networks, frames, final strain, range of the final box nu, agreement of positions nu
    (zero-stress route) and of slope nu with box nu over all strained frames (R^2, largest difference), agreement
    of the small-strain compression nu with linear response (C_xxyy/C_yyyy for this protocol, and the isotropic
    (B - G)/(B + G)), and the dataset's difficulty pooled over its trajectories (:func:`densim.observables.difficulty`:
    linear floor R^2, affine share of the acceleration, rms residual acceleration over rms residual velocity) with
    the mean thermal noise over signal (NaN unless every file records it). Each union of ``unions`` (name ->
    member datasets) gets a row over its members' trajectories.
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
        box_nu = np.concatenate([ds["poisson_ratio_box"].values[1:] for ds in group])
        pos_nu = np.concatenate([ds["poisson_ratio_positions"].values[1:] for ds in group])
        slope_nu = np.concatenate([ds["poisson_ratio_slope"].values[1:] for ds in group])
        final = np.array([ds["poisson_ratio_box"].values[-1] for ds in group])
        compression = np.array([small_strain_poisson_ratio(ds["box"].values, small_strain) for ds in group])
        uniaxial = np.array([float(ds["uniaxial_poisson_ratio"]) for ds in group])
        isotropic = np.array([float(ds["isotropic_poisson_ratio"]) for ds in group])
        rows.append(
            {
                "dataset": dataset,
                "networks": len(group),
                "frames": int(np.median([ds.sizes["time"] for ds in group])),
                "final_strain": float(np.median([ds["strain"].values[-1] for ds in group])),
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
                **difficulty([(ds["positions"].values, ds["box"].values[:, 0]) for ds in group]),
                "noise_over_signal": float(np.mean([ds["noise_over_signal"] for ds in group])) if all("noise_over_signal" in ds for ds in group) else np.nan,
            }
        )
    return pd.DataFrame(rows)
