"""Atomic writes: a write killed half-way leaves no output, and the next write of that file removes what it left."""

import json
import os
import signal
import subprocess
import sys

import pytest

from densim.io import _HOST, atomic_path, write_json

KILLED_WRITER = """
import sys, time
from densim.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text('{"half": ')
    print(tmp, flush=True)
    time.sleep(60)
"""


def test_a_killed_write_leaves_no_output_and_the_next_write_removes_its_temporary_file(tmp_path):
    target = tmp_path / "history.json"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    left = writer.stdout.readline().strip()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert not target.exists() and os.path.exists(left), "the kill should leave only the hidden temporary file"
    # a live writer's file (this process) and another host's are not this write's to remove
    live = tmp_path / f".history.json.{_HOST}-{os.getpid()}.live.tmp"
    other_host = tmp_path / f".history.json.elsewhere-{writer.pid}.x.tmp"
    for path in (live, other_host):
        path.write_text("busy")

    write_json({"step": 3}, target)
    assert json.loads(target.read_text()) == {"step": 3}
    assert not os.path.exists(left)
    assert live.exists() and other_host.exists()


def test_a_write_that_fails_leaves_nothing(tmp_path):
    target = tmp_path / "table.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("a,b\n1,")
            raise RuntimeError("the writer failed half-way")
    assert list(tmp_path.iterdir()) == []


def test_each_file_kind_is_written_and_read_by_one_layout(tmp_path):
    """A writer refuses contents that do not fit its kind's layout, naming the file and what is missing, and writes
    nothing; the reader refuses a file that does not fit the same layout (a variable with other dimensions)."""
    import numpy as np
    import xarray as xr

    from densim.io import SPECTRA, DensimFileError, read_spectra, write_dataset, write_spectra

    spectra = xr.Dataset({"eigenvalues": ("mode", np.arange(3.0)), "eigenvectors": (("node", "mode"), np.eye(4, 3)),
                          "valid": ("mode", np.ones(3, bool))}, attrs={"topology_hash": "abc", "k": 3})
    assert read_spectra(write_spectra(spectra, tmp_path / "good.nc")).attrs["densim_kind"] == SPECTRA.kind
    with pytest.raises(ValueError, match=r"short.nc: refusing to write a spectra file: missing variables \['valid'\]"):
        write_spectra(spectra.drop_vars("valid"), tmp_path / "short.nc")
    assert not (tmp_path / "short.nc").exists() and os.listdir(tmp_path) == ["good.nc"]
    transposed = spectra.assign(eigenvectors=(("mode", "node"), np.eye(3, 4))).assign_attrs(densim_kind="spectra")
    with pytest.raises(DensimFileError, match=r"transposed.nc: variable eigenvectors has dimensions \('mode', 'node'\)"):
        read_spectra(write_dataset(transposed, tmp_path / "transposed.nc"))


def test_the_statistics_layout_is_the_statistics_type():
    from dataclasses import fields

    from densim.io import STATISTICS
    from densim.simulator import Statistics

    assert list(STATISTICS.variables) == [field.name for field in fields(Statistics)]
