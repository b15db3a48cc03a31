"""The SLURM path on a real one-node cluster (slurm/local-cluster.sh starts one; CI does)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cluster_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return result.returncode == 0 and any(state in result.stdout for state in ("idle", "mixed", "allocated"))


pytestmark = pytest.mark.skipif(not cluster_is_up(), reason="no SLURM cluster here: run slurm/local-cluster.sh start (as root)")


def test_profile_runs_grouped_jobs_on_slurm(tmp_path):
    for item in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / item, tmp_path / item)
    for folder in ("workflow", "envs", "slurm"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    targets = ["results/trajectories/bond_pru_opt/0000.nc", "results/splits/bond_pru_opt/seed0.json"]
    # a Snakemake stuck polling ignores SIGTERM: bound it with SIGINT
    command = ["timeout", "-s", "INT", "900", sys.executable, "-m", "snakemake", *targets, "--cores", "all", "--profile", "slurm", "--configfile", "workflow/presets/smoke.yaml"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    for target in targets:
        assert (tmp_path / target).exists()
    assert "submitted with SLURM jobid" in result.stderr
    logs = tmp_path / ".snakemake/slurm_logs"
    # the three networks and the trajectory ran as one grouped cluster job
    assert list(logs.glob("group_simulate*/*.log"))
    assert list(logs.glob("rule_split/**/*.log"))
