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
