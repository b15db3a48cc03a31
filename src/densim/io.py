"""Every file format densim reads and writes. Physics and models never open files.

Writes are atomic (a temporary file in the same folder, then a rename), so a written file is complete or
absent. Reads check the file's kind and contents and name the file in every error.

Formats: netCDF for networks, trajectories, spectra (and the spectra cache), normalisation statistics; CSV
tables with a JSON provenance sidecar; JSON splits and training histories; PyTorch checkpoints that hold plain
data only (tensors, numbers, strings, lists and dicts), read with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import pickle
import socket
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from densim.springs import SpringNetwork

ENGINE = "netcdf4"
log = logging.getLogger(__name__)


class DensimFileError(ValueError):
    """A missing, unreadable, truncated or foreign input file."""


@contextlib.contextmanager
def atomic_path(path: str | Path, provenance: dict | None = None, suffix: str = ".tmp"):
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds.

    The file is complete or absent: a failed write leaves nothing, and a killed one at most a hidden
    ``.NAME.HOST-PID.*.tmp`` file (``suffix`` may extend it for writers that check it, such as ``.tmp.ipynb``), which
    the next write of the same file removes once that process is gone (:func:`_remove_dead_writers`). The file
    gets the usual permissions (0666 less the umask), not mkstemp's 0600. With ``provenance``, the JSON sidecar
    ``<path>.provenance.json`` is written just before the rename, with the file's own SHA-256 (``output_sha256``), so
    that a file edited afterwards is told from the one written (:func:`check_unedited`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers(path, suffix)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        if provenance is not None:
            write_json({**provenance, "output_sha256": file_sha256(tmp)}, provenance_sidecar(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_dead_writers(path: Path, suffix: str) -> None:
    """Remove the temporary files of ``path`` that killed writers on this host left (their process is gone).

    Writers on other hosts (a cluster's shared file system) and live ones, such as concurrent writers of one
    spectra cache entry, are left alone; a reused process id only keeps a dead writer's file.
    """
    prefix = f".{path.name}.{_HOST}-"
    for stale in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        pid = stale.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        log.info("removing %s, left by a write that was killed", stale)
        stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


_HOST = socket.gethostname().replace(".", "_").replace("/", "_") or "host"
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a netCDF file atomically."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=ENGINE)
    return Path(path)


@dataclass(frozen=True)
class Layout:
    """What every densim netCDF file of one kind holds: variables with their dimensions, and attributes.

    A stage builds a file's contents; the kind's writer (``write_<kind>``) checks them against the layout before
    writing and tags the file with its kind, and the kind's reader (``read_<kind>``) checks a file against the same
    layout, so a file one stage writes is one the next can read. Files may hold more than their layout (a protocol's
    own variables, provenance).
    """

    kind: str
    variables: dict[str, tuple[str, ...]]
    attrs: tuple[str, ...] = ()

    def problems(self, ds: xr.Dataset) -> list[str]:
        """What ``ds`` lacks or holds in the wrong shape, as phrases (empty when it fits)."""
        missing = [name for name in self.variables if name not in ds.variables]
        found = [f"variable {name} has dimensions {ds[name].dims}, expected {dims}"
                 for name, dims in self.variables.items() if name in ds.variables and ds[name].dims != dims]
        absent = [name for name in self.attrs if name not in ds.attrs]
        return ([f"missing variables {missing}"] if missing else []) + found + ([f"missing attributes {absent}"] if absent else [])

    def write(self, ds: xr.Dataset, path: str | Path) -> Path:
        """Write ``ds`` as a file of this kind, atomically.

        Raises
        ------
        ValueError
            Naming the file and what ``ds`` lacks, before anything is written.
        """
        problems = self.problems(ds)
        if problems:
            raise ValueError(f"{path}: refusing to write a {self.kind} file: {'; '.join(problems)}")
        tagged = ds.copy()
        tagged.attrs = {"densim_kind": self.kind, **{key: value for key, value in ds.attrs.items() if key != "densim_kind"}}
        return write_dataset(tagged, path)

    def read(self, path: str | Path) -> xr.Dataset:
        """A file of this kind, loaded into memory.

        Raises
        ------
        DensimFileError
            If the file is missing, unreadable, of another kind, or does not fit the layout (naming the file and what
            it lacks).
        """
        ds = read_dataset(path, self.kind)
        problems = self.problems(ds)
        if problems:
            raise DensimFileError(f"{path}: {'; '.join(problems)}")
        return ds


#: A spring network (``densim networks``): geometry, moduli (:func:`densim.networks.network_dataset`).
NETWORK = Layout("network", {"positions": ("node", "xy"), "box": ("xy",), "bonds": ("bond", "end"), "rest_length": ("bond",),
                             "stiffness": ("bond",)})
#: A trajectory (``densim trajectories``): frames of positions and box, strain, the network (:func:`densim.trajectories.trajectory_dataset`).
TRAJECTORY = Layout("trajectory", {"positions": ("time", "node", "xy"), "box": ("time", "xy"), "strain": ("time",),
                                   **{name: NETWORK.variables[name] for name in ("bonds", "rest_length", "stiffness")}},
                    attrs=("protocol", "dataset", "network"))
#: Laplacian eigenpairs of one network or one cache entry (:func:`densim.spectra.topology_spectra`).
SPECTRA = Layout("spectra", {"eigenvalues": ("mode",), "eigenvectors": ("node", "mode"), "valid": ("mode",)}, attrs=("topology_hash", "k"))
#: Normalisation statistics of one train split (:class:`densim.simulator.Statistics`).
STATISTICS = Layout("statistics", {**{f"{name}_{moment}": ("component",) for name in ("velocity", "acceleration") for moment in ("mean", "std")},
                                   "edge_mean": ("edge_feature",), "edge_std": ("edge_feature",)})
#: Scores of one model's rollouts (:func:`densim.evaluation.evaluate`), what figures and tables read.
EVALUATION = Layout("evaluation", {
    **dict.fromkeys(("l2", "rms", "mse", "poisson_ratio", "poisson_ratio_true", "slow_share", "blown_up"), ("trajectory", "step")),
    "mode_energy": ("trajectory", "step", "mode"), "nodes": ("trajectory",),
    **dict.fromkeys(("relative_mse", "poisson_r2", "poisson_bias", "blown_up_count"), ("step",))},
    attrs=("dataset", "model", "seed", "history", "table_step"))


def write_network(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a network file (:data:`NETWORK`)."""
    return NETWORK.write(ds, path)


def write_trajectory(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a trajectory file (:data:`TRAJECTORY`)."""
    return TRAJECTORY.write(ds, path)


def write_spectra(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a spectra file or cache entry (:data:`SPECTRA`)."""
    return SPECTRA.write(ds, path)


def evaluation_name(model: str, history: int) -> str:
    """The file of one run in an evaluation folder (``results/evaluation/{grid}/{dataset}/seed{seed}/``)."""
    return f"{model}_h{history}.nc"


def write_evaluation(ds: xr.Dataset, path: str | Path) -> Path:
    """Write an evaluation file (:data:`EVALUATION`)."""
    return EVALUATION.write(ds, path)


def read_trajectory(path: str | Path) -> xr.Dataset:
    """A trajectory file (:data:`TRAJECTORY`), refused (naming the file and the first bad frame) if its positions or
    box are not finite."""
    ds = TRAJECTORY.read(path)
    for name in ("positions", "box"):
        bad = ~np.isfinite(ds[name].values).reshape(ds.sizes["time"], -1).all(axis=1)
        if bad.any():
            raise DensimFileError(f"{path}: non-finite {name} from frame {int(np.argmax(bad))} on ({int(bad.sum())} frames)")
    return ds


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
        attrs={"densim_kind": NETWORK.kind, **attrs},
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
    """Read a network file (:data:`NETWORK`): the network and its full Dataset."""
    ds = NETWORK.read(path)
    return dataset_to_network(ds), ds


def write_table(table: pd.DataFrame, path: str | Path, attrs: dict) -> Path:
    """Write a CSV table atomically, with its provenance in ``<path>.provenance.json`` beside it."""
    with atomic_path(path, attrs) as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    return Path(path)


def provenance_sidecar(path: str | Path) -> Path:
    return Path(f"{path}.provenance.json")


def write_json(obj, path: str | Path) -> Path:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


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
    if path.suffix == ".pt":
        checkpoint = read_checkpoint(path)
        return {**checkpoint["provenance"], "run_hash": checkpoint["hash"], "initial_parameters": checkpoint["initial_parameters"]}
    sidecar = provenance_sidecar(path)
    if not sidecar.exists():
        raise DensimFileError(f"{path}: no provenance sidecar {sidecar.name}")
    return json.loads(sidecar.read_text())


def write_statistics(statistics, path: str | Path, attrs: dict) -> Path:
    """Write normalisation statistics (:class:`densim.simulator.Statistics`) as netCDF (kind ``statistics``)."""
    data_vars = {}
    for name, value in vars(statistics).items():
        dim = "edge_feature" if name.startswith("edge") else "component"
        data_vars[name] = (dim, value.detach().cpu().numpy().astype(np.float64))
    coords = {"component": ["x", "y"], "edge_feature": ["dx", "dy", "length", "inverse_rest_length"]}
    return STATISTICS.write(xr.Dataset(data_vars, coords=coords, attrs=attrs), path)


def read_statistics(path: str | Path):
    """Statistics written by :func:`write_statistics` (a wrong or incomplete file is an error naming it)."""
    import torch

    from densim.simulator import Statistics

    ds = STATISTICS.read(path)
    return Statistics(*(torch.as_tensor(ds[field.name].values, dtype=torch.float64) for field in fields(Statistics)))


#: Identifies a densim checkpoint and its layout.
CHECKPOINT_FORMAT = "densim-checkpoint-1"


def write_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write a checkpoint (a dict of plain data and tensors) atomically, tagged with :data:`CHECKPOINT_FORMAT`."""
    import torch

    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, tmp)
    return Path(path)


def read_checkpoint(path: str | Path, device="cpu") -> dict:
    """Read a checkpoint as plain data (``torch.load(..., weights_only=True)``).

    Raises
    ------
    DensimFileError
        If the file is missing, unreadable or truncated, holds anything beyond plain data (such as a pickled
        object, which would run code on loading: it is refused, not loaded), or is not a densim checkpoint.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise DensimFileError(f"{path}: no such file")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise DensimFileError(f"{path}: refused: the checkpoint holds more than plain data and tensors "
                              f"({str(err).splitlines()[0]})") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, zipfile errors ... on damaged files
        raise DensimFileError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise DensimFileError(f"{path}: not a densim checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    return checkpoint


def read_spectra(path: str | Path) -> xr.Dataset:
    """A spectra file or cache entry (:data:`SPECTRA`)."""
    return SPECTRA.read(path)


def spectra_content_hash(eigenvalues: np.ndarray, eigenvectors: np.ndarray, valid: np.ndarray) -> str:
    """SHA-256 of the arrays of a spectra Dataset, to tell a damaged cache entry from a good one."""
    digest = hashlib.sha256()
    for array in (eigenvalues.astype("<f8"), eigenvectors.astype("<f8"), valid.astype(np.uint8)):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def spectra_cache_path(cache_dir: str | Path, topology: str, k: int) -> Path:
    """Where the spectra cache keeps the first ``k`` eigenpairs of the topology with hash ``topology``."""
    return Path(cache_dir) / f"{topology}_k{k}.nc"


def read_spectra_cache_entry(path: Path, expected: dict, num_nodes: int) -> xr.Dataset | None:
    """The cache entry at ``path`` if it is readable and holds exactly what ``expected`` asks for, else None.

    An entry that is missing, unreadable, made for another request (``expected`` attributes, shape) or whose
    arrays do not match its content hash is not an error: the caller recomputes it (a warning says why).
    """
    if not path.is_file():
        return None
    try:
        entry = read_spectra(path)
    except DensimFileError as err:
        log.warning("spectra cache: %s, recomputing", err)
        return None
    mismatched = [key for key, value in expected.items() if entry.attrs.get(key) != value]
    if mismatched or entry["eigenvectors"].shape != (num_nodes, expected["k"]):
        log.warning("spectra cache: %s does not match this request (%s), recomputing", path, ", ".join(mismatched) or "shape")
        return None
    if entry.attrs.get("content_hash") != spectra_content_hash(*(entry[name].values for name in SPECTRA.variables)):
        log.warning("spectra cache: %s is damaged (its arrays do not match its content hash), recomputing", path)
        return None
    return entry


def read_evaluation(path: str | Path) -> xr.Dataset:
    """An evaluation file (:data:`EVALUATION`).

    Raises
    ------
    DensimFileError
        If the file is missing, unreadable, of another kind, or lacks a variable or attribute of its layout.
    """
    return EVALUATION.read(path)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_unedited(path: str | Path) -> None:
    """Refuse a file with a provenance sidecar whose bytes are no longer those it was written with.

    Raises
    ------
    DensimFileError
        Naming the file, if its SHA-256 differs from the sidecar's ``output_sha256`` (edited by hand or by another
        program since densim wrote it). Files whose sidecar predates the record pass.
    """
    sidecar = provenance_sidecar(path)
    recorded = json.loads(sidecar.read_text()).get("output_sha256") if sidecar.is_file() else None
    if recorded is not None and file_sha256(Path(path)) != recorded:
        raise DensimFileError(f"{path}: edited since densim wrote it (its SHA-256 is not the one in {sidecar.name}); "
                              "regenerate it rather than edit it")


def read_table(path: str | Path, required=()) -> pd.DataFrame:
    """Read a CSV table written by :func:`write_table`, naming the file if it is missing, malformed, edited since it
    was written (:func:`check_unedited`) or lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise DensimFileError(f"{path}: no such file")
    check_unedited(path)
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DensimFileError(f"{path}: not a readable CSV table ({err})") from err
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DensimFileError(f"{path}: missing columns {missing}")
    return table


def write_figure(fig, path: str | Path, attrs: dict) -> Path:
    """Save a matplotlib figure atomically (format from the suffix), with its provenance in ``<path>.provenance.json``."""
    path = Path(path)
    with atomic_path(path, attrs) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=200, bbox_inches="tight")
    return path


def write_text(text: str, path: str | Path, attrs: dict) -> Path:
    """Write a text file (a Markdown or LaTeX table) atomically, with its provenance in ``<path>.provenance.json``."""
    with atomic_path(path, attrs) as tmp:
        tmp.write_text(text if text.endswith("\n") else text + "\n")
    return Path(path)
