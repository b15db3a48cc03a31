"""The SLURM path on a real one-node cluster (slurm/local-cluster.sh starts one; CI does).

Where no cluster is up the test is skipped, unless ``DENSIM_REQUIRE_SLURM`` is set (``.ci/run`` sets it when it has
started one): then a cluster that is not usable fails the test instead of skipping it.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = bool(os.environ.get("DENSIM_REQUIRE_SLURM"))


def cluster_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return result.returncode == 0 and any(state in result.stdout for state in ("idle", "mixed", "allocated"))


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not REQUIRED and not cluster_is_up(), reason="no SLURM cluster here: run slurm/local-cluster.sh start (as root)")]


def test_profile_runs_the_smoke_preset_through_training_and_evaluation_on_slurm(tmp_path):
    assert cluster_is_up(), "DENSIM_REQUIRE_SLURM is set but sinfo shows no usable SLURM node"
    for item in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / item, tmp_path / item)
    for folder in ("workflow", "envs", "slurm", "notebooks", "profiles"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    targets = ["results/trajectories/bond_pru_opt/0000.nc", "results/splits/bond_pru_opt/seed0.json",
               "results/evaluation/main/bond_pru_opt/seed0"]
    # a Snakemake stuck polling ignores SIGTERM: bound it with SIGINT
    # a local cluster answers squeue at once: poll it every 2 s (the profile keeps Snakemake's 10 s, kinder to a shared controller)
    # one model in the main grid, so that its evaluation job (all the grid's models on a dataset) needs one training job
    (tmp_path / "one_model.yaml").write_text("experiments:\n  models: [spatial]\n")
    command = ["timeout", "-s", "INT", "900", sys.executable, "-m", "snakemake", *targets, "--cores", "all", "--profile", "slurm",
               "--seconds-between-status-checks", "2", "--configfile", "workflow/presets/smoke.yaml", "one_model.yaml"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    for target in targets:
        assert (tmp_path / target).exists()
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", result.stderr)
    report = f"SLURM job ids of the smoke preset's networks, trajectories, split, statistics, training and evaluation: {', '.join(submitted)}"
    print(report)
    if os.environ.get("DENSIM_SLURM_JOBS_FILE"):  # .ci/run prints it into the CI log
        Path(os.environ["DENSIM_SLURM_JOBS_FILE"]).write_text(report + "\n" + "\n".join(
            line for line in result.stderr.splitlines() if "SLURM jobid" in line) + "\n")
    assert len(submitted) >= 5, result.stderr[-4000:]
    for rule in ("training_statistics", "training", "evaluation"):  # each ran as a SLURM job of its own
        assert list((tmp_path / ".snakemake/slurm_logs").glob(f"rule_{rule}/**/*.log")), rule
    logs = tmp_path / ".snakemake/slurm_logs"
    # the three networks and the trajectory ran as one grouped cluster job
    assert list(logs.glob("group_simulate*/*.log"))
    assert list(logs.glob("rule_splits/**/*.log"))
