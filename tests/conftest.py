"""Shared fixtures: small jammed networks made once per session."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from densim.packing import contact_network, jammed_packing

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "config.yaml", "workflow", "envs")


def copy_checkout(dest: Path, items=WORKFLOW) -> Path:
    """A copy of the workflow (optionally with the package), not of results, to run Snakemake in."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for item in items:
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, dest / item, ignore=ignore)
        else:
            shutil.copy(ROOT / item, dest / item)
    return dest


@pytest.fixture(scope="session")
def packing():
    return jammed_packing(64, 0.92, 1.4, np.random.default_rng(7), force_tolerance=1e-12)


@pytest.fixture(scope="session")
def jammed(packing):
    """A rigid, stress-free contact network of a 64-disk jammed packing."""
    network, _ = contact_network(packing)
    return network
