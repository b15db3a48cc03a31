"""Every file format densim reads and writes. Physics and models never open files.

Writes are atomic (a temporary file in the same folder, then a rename), so a written file is complete or
absent. Reads check the file's kind and contents and name the file in every error.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from densim.network import SpringNetwork

ENGINE = "netcdf4"


class DensimFileError(ValueError):
    """A missing, unreadable, truncated or foreign input file."""


def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    return Path(tmp)


def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a netCDF file atomically."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        ds.to_netcdf(tmp, engine=ENGINE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_dataset(path: str | Path, kind: str, variables=()) -> xr.Dataset:
    """Open a densim netCDF file of the given kind, loaded into memory.

    Raises
    ------
    DensimFileError
        If the file is missing, unreadable, of another kind, or lacks one of ``variables``.
    """
    path = Path(path)
    if not path.is_file():
        raise DensimFileError(f"{path}: no such file")
    try:
        with xr.open_dataset(path, engine=ENGINE) as ds:
            ds = ds.load()
    except Exception as err:  # netCDF4 raises OSError, RuntimeError or ValueError on damaged files
        raise DensimFileError(f"{path}: not a readable netCDF file ({err})") from err
    found = ds.attrs.get("densim_kind")
    if found != kind:
        raise DensimFileError(f"{path}: expected a densim {kind} file, found kind {found!r}")
    missing = [v for v in variables if v not in ds.variables]
    if missing:
        raise DensimFileError(f"{path}: missing variables {missing}")
    return ds


NETWORK_VARIABLES = ("positions", "box", "bonds", "rest_length", "stiffness")


def network_to_dataset(network: SpringNetwork, data_vars: dict, attrs: dict) -> xr.Dataset:
    """A network as an xarray Dataset with extra scalar/array variables and attributes."""
    ds = xr.Dataset(
        {
            "positions": (("node", "xy"), network.positions, {"units": "small particle diameter"}),
            "box": (("xy",), network.box, {"units": "small particle diameter", "description": "periodic box lengths, origin at 0"}),
            "bonds": (("bond", "end"), network.bonds.astype(np.int32), {"description": "node indices of each bond (0-based)"}),
            "rest_length": (("bond",), network.rest_lengths, {"units": "small particle diameter"}),
            "stiffness": (("bond",), network.stiffness, {"description": "spring constant k, energy k/2 (r - l0)^2"}),
            **data_vars,
        },
        coords={"xy": ["x", "y"]},
        attrs={"densim_kind": "network", **attrs},
    )
    return ds


def dataset_to_network(ds: xr.Dataset) -> SpringNetwork:
    """The spring network stored in a network or trajectory Dataset."""
    return SpringNetwork(
        positions=ds["positions"].values.astype(np.float64),
        box=ds["box"].values.astype(np.float64),
        bonds=ds["bonds"].values.astype(np.int64),
        rest_lengths=ds["rest_length"].values.astype(np.float64),
        stiffness=ds["stiffness"].values.astype(np.float64),
    )


def read_network(path: str | Path) -> tuple[SpringNetwork, xr.Dataset]:
    """Read a network file: the network and its full Dataset."""
    ds = read_dataset(path, "network", NETWORK_VARIABLES)
    return dataset_to_network(ds), ds


def write_table(table: pd.DataFrame, path: str | Path, attrs: dict) -> Path:
    """Write a CSV table atomically, with its provenance in ``<path>.provenance.json`` beside it."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        table.to_csv(tmp, index=False, float_format="%.10g")
        write_json(attrs, provenance_sidecar(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def provenance_sidecar(path: str | Path) -> Path:
    return Path(f"{path}.provenance.json")


def write_json(obj, path: str | Path) -> Path:
    """Write JSON atomically."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_json(path: str | Path, required=()) -> dict:
    """Read a densim JSON file, naming the file if it is missing, malformed or lacks a key."""
    path = Path(path)
    if not path.is_file():
        raise DensimFileError(f"{path}: no such file")
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DensimFileError(f"{path}: not valid JSON ({err})") from err
    missing = [key for key in required if key not in value]
    if missing:
        raise DensimFileError(f"{path}: missing keys {missing}")
    return value


def read_provenance(path: str | Path) -> dict:
    """Provenance attributes of any densim output: netCDF attributes or the JSON sidecar."""
    path = Path(path)
    if not path.exists():
        raise DensimFileError(f"{path}: no such file")
    if path.suffix == ".nc":
        try:
            with xr.open_dataset(path, engine=ENGINE) as ds:
                return dict(ds.attrs)
        except Exception as err:
            raise DensimFileError(f"{path}: not a readable netCDF file ({err})") from err
    if path.suffix == ".json":
        return read_json(path, required=("provenance",))["provenance"]
    sidecar = provenance_sidecar(path)
    if not sidecar.exists():
        raise DensimFileError(f"{path}: no provenance sidecar {sidecar.name}")
    return json.loads(sidecar.read_text())
