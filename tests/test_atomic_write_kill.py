"""A writer killed with SIGKILL mid-write leaves its temporary file; the next write of that file removes it.

`write_atomically` writes a hidden `.NAME.<pid>@<host>.<token>.tmp` beside the target and renames it over
the target. SIGKILL runs no cleanup, so the temporary file stays. The next write of the same target
removes temporary files of that target whose writer (pid, this host) is gone, and leaves a live writer's
alone. The kill here is real: a child process writing through the real function, stopped by SIGKILL
while its temporary file is on disk and not yet renamed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_edgehil.results.document_text import write_atomically
from pytest_edgehil.results.store import ResultsWriter, RunInfo, load_results

# The child writes `path` through write_atomically; its fsync says "ready" and then waits for ever, so the
# parent's SIGKILL lands while the temporary file exists and the rename has not happened.
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from pytest_edgehil.results import document_text

    def stalled_fsync(fd):
        print("ready", flush=True)
        time.sleep(600)

    document_text.os.fsync = stalled_fsync
    document_text.write_atomically(Path(sys.argv[1]), sys.argv[2])
""")


def start_writer(path: Path, text: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), text], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def temporaries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".tmp"))


def killed_writer(path: Path, text: str) -> Path:
    child = start_writer(path, text)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    (left,) = temporaries(path.parent)  # what SIGKILL leaves: the premise of the fix
    assert left.name.startswith(f".{path.name}.") and str(child.pid) in left.name
    return left


def test_the_next_write_removes_a_killed_writers_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    killed_writer(target, "half")
    assert target.read_text() == "old"  # the kill never reached the rename: the old file is whole
    write_atomically(target, "new")
    assert target.read_text() == "new"
    assert temporaries(tmp_path) == []


def test_a_live_writers_temporary_file_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    child = start_writer(target, "theirs")
    try:
        (theirs,) = temporaries(tmp_path)
        write_atomically(target, "mine")
        assert theirs.exists(), "a writer still running owns its temporary file"
        assert target.read_text() == "mine"
    finally:
        child.kill()
        child.wait(timeout=30)


def test_another_targets_temporary_file_is_not_touched(tmp_path: Path) -> None:
    other = tmp_path / "report.html"
    left = killed_writer(other, "half")
    write_atomically(tmp_path / "results.json", "new")
    assert left.exists()  # only the temporaries of the file being written are this write's to judge


def test_a_run_after_a_killed_one_loads_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    killed_writer(target, json.dumps({"half": True}))
    writer = ResultsWriter(target, RunInfo(started_at="2026-12-01T00:00:00+00:00", backend="SIMULATED"))
    writer.finish(0)
    assert load_results(target).run.complete
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("name", [".results.json.999999999.abcdef.tmp", ".results.json.999999999@otherhost.ab.tmp"])
def test_names_it_cannot_attribute_to_a_dead_writer_here_are_kept(tmp_path: Path, name: str) -> None:
    # A pid no process can have, but written by an older version (no host) or by another host sharing the
    # directory: whether that writer is gone cannot be told from here, so the file is kept.
    stray = tmp_path / name
    stray.write_text("x")
    write_atomically(tmp_path / "results.json", "new")
    assert stray.exists()
