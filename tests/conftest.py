"""Shared fixtures: small jammed networks made once per session."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from densim.packing import contact_network, jammed_packing

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "config.yaml", "workflow", "envs", "notebooks", "profiles")


def copy_checkout(dest: Path, items=WORKFLOW) -> Path:
    """A copy of the workflow (optionally with the package), not of results, to run Snakemake in."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for item in items:
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, dest / item, ignore=ignore)
        else:
            shutil.copy(ROOT / item, dest / item)
    return dest


#: Fixtures that run a whole workflow: a test that uses one takes minutes on 2 cores.
SLOW_FIXTURES = {"smoke"}


def pytest_collection_modifyitems(items):
    """Mark ``slow`` every test that runs a whole workflow (``pytest -m "not slow"`` is the quick suite)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """A workflow copy in which the smoke preset has run to the end (tests copy it before changing anything)."""
    workdir = copy_checkout(tmp_path_factory.mktemp("smoke"))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml"],
                            cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def packing():
    return jammed_packing(64, 0.92, 1.4, np.random.default_rng(7), force_tolerance=1e-12)


@pytest.fixture(scope="session")
def jammed(packing):
    """A rigid, stress-free contact network of a 64-disk jammed packing."""
    network, _ = contact_network(packing)
    return network


def tiny_graphs(indices=range(4)):
    """Tiny BOND-PRU-OPT networks (40 disks) compressed in LAMMPS for 16 frames, as graphs with 8 eigenpairs each."""
    from densim.md import MDSettings
    from densim.networks import DatasetConfig, generate_network, network_dataset
    from densim.rollout import trajectory_graph
    from densim.spectra import spectra_dataset
    from densim.trajectories import simulate, trajectory_dataset

    config = DatasetConfig.from_dict("tiny", {"generator": "bond_pru_opt", "networks": 4, "nu_range": [-0.3, 0.3], "packing": {"nodes": 40}})
    settings = MDSettings(frames=16, steps_per_frame=100)
    result = []
    for index in indices:
        generated = generate_network(config, index)
        network_ds = network_dataset(config, index, generated, {})
        trajectory = trajectory_dataset(network_ds, settings, simulate(generated.network, settings, f"tiny/{index}"), {})
        result.append(trajectory_graph(trajectory, spectra_dataset(network_ds, k=8, dense_below=300, sigma=-1e-3)))
    return result


@pytest.fixture(scope="session")
def graphs():
    """The four tiny graphs of :func:`tiny_graphs` (three to train on, one to validate)."""
    return tiny_graphs()
