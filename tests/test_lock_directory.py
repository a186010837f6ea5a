"""The lock directory: one per host, sticky and world-writable, safe against planted symlinks, and shared
by the users of a lab (each sees the others' holders; a killed holder's file locks nobody out).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pytest_edgehil.errors import ConfigError, DeviceBusy
from pytest_edgehil.locks import ResourceLock, lock_dir, prepare_lock_dir

from .conftest import REPO
from .test_locks import WAIT_S


# -- one lock directory per host, shared by its users ------------------------------------------------------
def test_the_default_lock_directory_is_one_per_host_sticky_and_world_writable(tmp_path, monkeypatch):
    """Two users on one host must see each other's locks: the default directory is not per-user, is
    created sticky and world-writable (1777), and lock files are readable and writable by all (0666),
    whatever the umask. One user cannot be two; this checks the permissions a second user relies on."""
    monkeypatch.delenv("EDGEHIL_LOCK_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no longer a per-user choice
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert lock_dir() == tmp_path / "tmp" / "edgehil-locks"
    old_umask = os.umask(0o077)  # the strictest usual umask: nothing of ours may depend on it
    try:
        lock = ResourceLock("device 'x' on /dev/ttyX", "device-x", busy_error=DeviceBusy, owner="nightly")
        lock.acquire()
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_IMODE(lock.directory.stat().st_mode) == 0o1777
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o666
        holder = lock.holder()
        assert holder is not None and holder.user == pwd.getpwuid(os.getuid()).pw_name and holder.pid == os.getpid()
        with pytest.raises(DeviceBusy, match=rf"busy: held by PID {os.getpid()} \(user {pwd.getpwuid(os.getuid()).pw_name}\) on "
                                             r".* since .*\(nightly\)"):
            ResourceLock("device 'x' on /dev/ttyX", "device-x", busy_error=DeviceBusy).acquire()
    finally:
        lock.release()


def test_a_lock_directory_that_is_a_planted_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "edgehil-locks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"not a directory \(a symlink or a file\).*EDGEHIL_LOCK_DIR"):
        ResourceLock("device 'x'", "device-x", directory=tmp_path / "edgehil-locks").acquire()
    assert not any((tmp_path / "elsewhere").iterdir())


NOT_WRITABLE = r"not writable by this user.*chmod 1777.*EDGEHIL_LOCK_DIR"

UNPRIVILEGED = """
import os, sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.locks import ResourceLock
os.setgroups([]); os.setgid(65534); os.setuid(65534)  # everything is imported: from here on, nobody
try:
    ResourceLock("device 'x'", "device-x", directory=Path(sys.argv[1])).acquire()
except ConfigError as exc:
    print("REFUSED", exc, flush=True)
    sys.exit(3)
print("HELD", flush=True)
"""


def test_a_lock_directory_this_user_cannot_write_says_whose_it_is_and_what_to_set(request):
    """As root (CI runs as root) every directory is writable: the same refusal is then seen by an
    unprivileged account (nobody, switched to with setuid, as above) in a directory root owns. It used to
    skip as root, so CI never ran it."""
    base = Path(tempfile.mkdtemp(prefix="edgehil-theirs-"))  # pytest's tmp_path sits under a 0700 directory
    os.chmod(base, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    locked = base / "theirs"
    locked.mkdir(mode=0o755)
    os.chmod(locked, 0o555)  # as a directory of another user looks to this one (we own it, so chmod it back)
    request.addfinalizer(lambda: os.chmod(locked, 0o755))
    if hasattr(os, "getuid") and os.getuid() == 0:
        other = subprocess.run([sys.executable, "-c", UNPRIVILEGED, str(locked), str(REPO)], check=False,
                               capture_output=True, text=True, timeout=WAIT_S)
        assert other.returncode == 3 and other.stdout.startswith("REFUSED"), other.stdout + other.stderr
        assert re.search(NOT_WRITABLE, other.stdout, re.DOTALL), other.stdout
    else:
        with pytest.raises(ConfigError, match=NOT_WRITABLE):
            ResourceLock("device 'x'", "device-x", directory=locked).acquire()
    assert not any(locked.iterdir())


CONTENDER = """
import json, os, sys
sys.path.insert(0, sys.argv[4])
from pathlib import Path
from pytest_edgehil.errors import DeviceBusy
from pytest_edgehil.locks import ResourceLock
uid, directory, mode = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
os.setgroups([]); os.setgid(uid); os.setuid(uid)  # everything is imported: from here on, another account
lock = ResourceLock("device 'rack' on /dev/ttyR", "device-rack", busy_error=DeviceBusy, directory=directory,
                    owner=f"job of uid {uid}")
try:
    lock.acquire()
except DeviceBusy as exc:
    print("BUSY", exc, flush=True)
    sys.exit(3)
print("HELD", json.dumps(lock.holder().__dict__), flush=True)
if mode == "hold":
    sys.stdin.readline()  # hold until killed
lock.release()
"""


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to run contenders as two other accounts")
def test_two_other_accounts_see_each_others_holder_and_a_killed_ones_file_does_not_lock_out_the_other(request):
    """Two real accounts (uids 12345 and 65534, switched to with setuid) on one default-style directory:
    the second is told who holds the board, by PID and account; after the first is SIGKILLed, its lock
    file (owned by it, in a sticky directory the second cannot delete from) does not keep the second out."""
    base = Path(tempfile.mkdtemp(prefix="edgehil-accounts-"))  # pytest's tmp_path sits under a 0700 directory
    os.chmod(base, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    directory = base / "edgehil-locks"
    prepare_lock_dir(directory, "test")  # as the first user of the host would, at its first lock
    command = [sys.executable, "-c", CONTENDER]
    first = subprocess.Popen([*command, "12345", str(directory), "hold", str(REPO)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = first.stdout.readline()
        assert line.startswith("HELD"), line + first.stdout.read() if first.poll() is not None else line
        assert (directory / "device-rack.lock").stat().st_uid == 12345
        second = subprocess.run([*command, "65534", str(directory), "try", str(REPO)], check=False, capture_output=True,
                                text=True, timeout=WAIT_S)
        assert second.returncode == 3, second.stdout + second.stderr
        assert f"busy: held by PID {first.pid} (user uid 12345) on " in second.stdout
        assert "(job of uid 12345)" in second.stdout
    finally:
        first.kill()
        first.wait(timeout=WAIT_S)
    after = subprocess.run([*command, "65534", str(directory), "try", str(REPO)], check=False, capture_output=True, text=True,
                           timeout=WAIT_S)
    assert after.returncode == 0 and after.stdout.startswith("HELD"), after.stdout + after.stderr
    assert json.loads(after.stdout.split(" ", 1)[1])["pid"] != first.pid

