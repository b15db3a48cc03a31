"""Hard kills: the whole workflow killed with SIGKILL inside each stage, then started again with the README's command.

Snakemake's lock of the killed run is cleared with ``--unlock`` first (Snakemake cannot tell a dead run's lock from a
live one's). Nothing finished is redone, nothing half-written is left as an output, and every output opens. Each kill
point runs only the targets its stage needs, not the whole DAG; the last two start from the smoke run with their stage's
outputs removed. ``profiles/default`` (used by every ``snakemake`` run from the checkout) has
``rerun-incomplete``, so the jobs that were running when the kill came are simply run again. A finished output is
one Snakemake had not marked incomplete when the kill came (its markers in ``.snakemake/incomplete``); training jobs
that were cut off resume from their ``last.pt``, which their log says.
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import copy_checkout

pytestmark = pytest.mark.slow  # each kills and resumes a workflow run (1 to 4 minutes on 2 cores)

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "workflow/presets/smoke.yaml"]
#: Kill point -> (outputs of the stage, extra config that keeps the stage busy long enough to kill inside it, the
#: targets run: the stage and what it needs, not the whole DAG). The kill comes once Snakemake's log says that a job
#: of the stage's rules (STAGE_RULES) finished.
DATA = ["results/trajectories/summary.csv"]
KILL_POINTS = {
    "network generation": ("results/networks/*/[0-9]*.nc", "datasets:\n  noi_pru: {networks: 12}\n", DATA),
    "LAMMPS compression": ("results/trajectories/*/[0-9]*.nc", "trajectories:\n  steps_per_frame: 1500\n", DATA),
    "spectra": ("results/spectra/*/[0-9]*.nc", "datasets:\n  noi_pru: {networks: 12}\n",
                [f"results/spectra/{d}/{i:04d}.nc" for d in ("node_opt", "bond_pru_opt") for i in range(3)]
                + [f"results/spectra/noi_pru/{i:04d}.nc" for i in range(12)]),
    # spatial trains long enough to be cut off between checkpoints; nlsf and the baseline finish first
    "training": ("results/training/*/*/h*/seed*/best.pt",
                 "training:\n  steps: 3000\n  validate_every: 50\n  overrides:\n    nlsf: {steps: 100}\n",
                 [f"results/training/node_opt/{m}/h2/seed0/best.pt" for m in ("spatial", "nlsf", "frozen")]),
    # six jobs (each a grid's models on one dataset) on two cores: the kill comes after the first, with others running
    # and left to start
    "evaluation": ("results/evaluation/*/*/seed[0-9]*", "", [f"results/evaluation/main/{d}/seed0" for d in ("node_opt", "bond_pru_opt", "noi_pru", "comb", "impact")]
                   + ["results/evaluation/history/node_opt/seed0"]),
    # four notebooks on two cores: the kill comes after the first pair, inside the second
    "notebook rendering": ("results/notebooks/*.ipynb", "", ["results/notebooks/tables.ipynb", "results/notebooks/rollout_accuracy.ipynb",
                                                             "results/notebooks/modes_and_bias.ipynb", "results/notebooks/history.ipynb"]),
}
#: Kill point -> the rules of its stage (a regular expression of rule names).
STAGE_RULES = {"network generation": "networks", "LAMMPS compression": "trajectories", "spectra": "spectra", "training": "training",
               "evaluation": "evaluation", "notebook rendering": "tables|rollout_accuracy|modes_and_bias|history"}
#: Points that start from a finished smoke run less the stage's outputs (the folders removed), so that only the
#: stage runs again; the others run their stage's inputs too.
FROM_SMOKE = {"evaluation": ["results/evaluation"], "notebook rendering": ["results/notebooks", "results/figures", "results/tables"]}
#: Points whose kill must land while a job of the stage runs, not only after one finished.
RUNNING = {"training": "results/training/node_opt/spatial/h2/seed0/last.pt", "notebook rendering": "results/notebooks/.*.tmp.ipynb"}


def outputs(workdir):
    """Every output file under results/ (hidden temporary files and folders of unfinished writes aside), with its mtime."""
    return {path: path.stat().st_mtime_ns for path in (workdir / "results").rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(workdir).parts)}


def opens(path) -> None:
    """Read an output back: netCDF through xarray, checkpoints as densim reads them, JSON, CSV; figures are not empty."""
    import pandas as pd
    import xarray as xr

    from densim.io import read_checkpoint

    if path.suffix == ".nc":
        xr.open_dataset(path).close()
    elif path.suffix == ".pt":
        read_checkpoint(path)
    elif path.suffix in (".json", ".ipynb"):
        json.loads(path.read_text())
    elif path.suffix == ".csv":
        pd.read_csv(path)
    else:
        assert path.stat().st_size > 0, path


def incomplete(workdir) -> set:
    """The outputs of the jobs Snakemake had started and not finished (its markers are named by the path in base64)."""
    markers = (workdir / ".snakemake" / "incomplete").glob("*")
    return {workdir / base64.b64decode(marker.name).decode() for marker in markers if marker.is_file()}


def in_progress(workdir, log, rules: str, running: str | None) -> bool:
    """Whether Snakemake's log says a job of ``rules`` finished and, where asked, a job of the stage is still running
    (its ``running`` file exists)."""
    finished = re.search(rf"^Finished jobid: \d+ \(Rule: (?:{rules})\)$", log.read_text(), re.MULTILINE)
    return bool(finished) and (running is None or any(workdir.glob(running)))


def wait_until_gone(group: int, timeout: float = 60.0) -> None:
    """Block until no process of the process group is left (a killed group's members are reaped by their parents)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {group} still has processes {timeout} s after SIGKILL")


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_hard_kill_inside_a_stage_then_the_readme_command_finishes_without_redoing_finished_work(tmp_path, point, request):
    pattern, extra, targets = KILL_POINTS[point]
    if point in FROM_SMOKE:
        workdir = tmp_path / "work"
        shutil.copytree(request.getfixturevalue("smoke"), workdir, symlinks=True)
        for folder in FROM_SMOKE[point]:
            shutil.rmtree(workdir / folder)
    else:
        workdir = copy_checkout(tmp_path)
    (workdir / "slow.yaml").write_text(extra or "{}\n")
    command = [*SNAKEMAKE[:1], "-m", "snakemake", *targets, *SNAKEMAKE[3:], "slow.yaml"]
    log = workdir / "killed-run.log"
    with log.open("w") as stream:
        process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=stream, start_new_session=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline:
            if in_progress(workdir, log, STAGE_RULES[point], RUNNING.get(point)):
                break
            assert process.poll() is None, "the run ended before the stage could be killed"
            time.sleep(0.1)
        else:
            pytest.fail(f"no output of {point} after 10 minutes")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # Snakemake and every job it started
        process.wait(timeout=60)
    wait_until_gone(process.pid)  # every process of the group is gone: nothing writes any more
    # the hidden temporary files of the writes the kill cut off (a killed process cannot remove its own)
    left_by_kill = set((workdir / "results").rglob(".*.tmp*"))
    before, cut_off = outputs(workdir), incomplete(workdir)
    # a cut-off training job's last.pt is its resume point, and an output's provenance sidecar belongs to that
    # output: neither is a finished output when the output itself was cut off
    finished = {path: mtime for path, mtime in before.items()
                if path not in cut_off and not cut_off.intersection(path.parents) and not (path.name == "last.pt" and path.with_name("best.pt") in cut_off)
                and not (path.name.endswith(".provenance.json") and path.with_name(path.name.removesuffix(".provenance.json")) in cut_off)}
    at_kill = set(workdir.glob(pattern)) - cut_off
    assert at_kill, f"nothing of {point} had finished"
    assert cut_off, f"no job was running when {point} was killed"

    # Snakemake's lock of the killed run stays behind (it cannot tell a dead run from a live one): clear it, as the
    # README says, then the README's command
    unlock = subprocess.run([*SNAKEMAKE, "slow.yaml", "--unlock"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    after = outputs(workdir)
    redone = [str(path.relative_to(workdir)) for path, mtime in finished.items() if after.get(path) != mtime]
    assert not redone, f"finished outputs redone or gone after a kill in {point}: {redone[:5]}"
    assert len(set(workdir.glob(pattern)) - at_kill) > 0, f"{point} had ended before the kill"
    # the rerun's writes of the cut-off outputs removed what the killed writes left, and left nothing of their own
    left = sorted(str(path.relative_to(workdir)) for path in (workdir / "results").rglob(".*.tmp*"))
    assert not left, f"half-written files left after the rerun (the kill left {len(left_by_kill)}): {left[:5]}"
    for path in after:
        opens(path)
    if point == "training":  # the cut-off job went on from its last checkpoint
        resumed = [line for line in (workdir / "logs/training/node_opt/spatial/h2/seed0.log").read_text().splitlines() if "resuming from" in line]
        assert resumed and int(resumed[-1].rsplit(" ", 1)[1]) > 0, "training started again from step 0"
