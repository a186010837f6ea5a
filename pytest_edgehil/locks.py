"""Cross-process locks on bench resources: one owner per board and per analyzer channel.

POSIX lets two processes open one serial port; each then reads part of the other's bytes, and one run can
measure the model the other one loaded. Two things stop that (docs/sharing-a-lab.md):

- the port is opened with pyserial's `exclusive=True` (an advisory `flock` on the device node, seen by
  every process of every user that asks for it);
- before opening it, the bench takes a `ResourceLock` named after the board (its USB serial number, else
  the resolved port): an `flock` on a lock file that also says who holds it, so the second process fails
  with "busy: held by PID … (user …) on HOST since …: COMMAND" instead of an anonymous "resource
  unavailable".

The lock is an OS-level `flock` on an open file: when its holder dies (SIGKILL included) the kernel
drops it, so a crashed run never leaves a board locked. The holder writes who it is into the lock file
it holds; a contender reads it from there.

Lock files live in ONE directory per machine, shared by its users: `$EDGEHIL_LOCK_DIR`, else
`<system temp dir>/edgehil-locks`, created sticky and world-writable (mode 1777, like /tmp itself), with
lock files readable and writable by all (0666), so two people on one host see each other's holders.
Lock files are never deleted: deleting one that another process has opened but not yet locked would let
two processes each hold "the lock" on two different files. (Why not `filelock`, used here before: it
deletes the file on release and, in a sticky directory, refuses a lock file owned by another account, so
one user's crashed run would lock every other user out of that board until someone deleted the file.)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pwd
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_edgehil.errors import ConfigError, ResourceBusy

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

LOCK_DIR_ENV = "EDGEHIL_LOCK_DIR"
SHARED_DIR_MODE = 0o1777  # sticky + world-writable: everyone creates, nobody deletes another's files
LOCK_FILE_MODE = 0o666  # every user can open (to lock) and read (the holder) every lock file
POLL_S = 0.2  # how often a waiting acquire tries again
PROGRESS_EVERY_S = 10.0  # how often a waiting acquire says what it waits for
MAX_HOLDER_BYTES = 65536  # a holder record is a few hundred bytes; more is not ours to read


def lock_dir() -> Path:
    """Where lock files live: `$EDGEHIL_LOCK_DIR`, else `<system temp dir>/edgehil-locks` (one per host)."""
    override = os.environ.get(LOCK_DIR_ENV)
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / "edgehil-locks"


def lock_name(prefix: str, identity: str) -> str:
    """A file name for `identity` (a port path, URL or serial number): readable part + short digest."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identity).strip("_.")[:60]
    return f"{prefix}-{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def default_owner() -> str:
    """What this process is, for a busy message: its command line (and xdist worker, if one)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    command = " ".join(sys.argv) or sys.executable
    return f"{command} [xdist {worker}]" if worker else command


def _user() -> str:
    """The account this process runs as (from the uid, not $USER, which sudo and su may keep)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (a container's bare uid): the uid is all there is
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written by the holder right after acquiring, read by whoever finds it busy."""

    pid: int
    host: str
    since: str  # ISO 8601, UTC, seconds
    owner: str  # the holder's command line (pytest argv)
    resource: str
    user: str = ""  # login name of the holder's account ("" in records of older releases)

    def describe(self) -> str:
        user = f" (user {self.user})" if self.user else ""
        return f"PID {self.pid}{user} on {self.host} since {self.since} ({self.owner})"


def prepare_lock_dir(directory: Path, what: str) -> None:
    """Create `directory` if needed; one this process creates (or owns) is made sticky and world-writable
    (SHARED_DIR_MODE), so other users can lock in it too. Raises ConfigError naming the directory when it
    cannot be created, is not a directory (a symlink planted in /tmp included), or is not writable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{what}: the lock directory {directory} is not a directory (a symlink or a file); "
                              f"remove it, or set {LOCK_DIR_ENV} to a directory shared by the lab's users")
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != SHARED_DIR_MODE:
            os.chmod(directory, SHARED_DIR_MODE)  # mkdir's mode is cut by the umask: set it explicitly
    except OSError as exc:
        raise ConfigError(f"{what}: cannot create the lock directory {directory}: {exc.strerror}; set "
                          f"{LOCK_DIR_ENV} to a directory every user of the lab can write") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: the lock directory {directory} (owner uid {info.st_uid}, mode "
                          f"{stat.S_IMODE(info.st_mode):o}) is not writable by this user; ask its owner to "
                          f"`chmod 1777` it, or set {LOCK_DIR_ENV} to a directory every user of the lab can write")


@dataclass
class ResourceLock:
    """An exclusive, cross-process lock on one bench resource.

    `resource` names it for people ("device 'coral' on /dev/ttyACM0"); `name` is the lock file's stem
    (`lock_name(...)`); `busy_error` is the `ResourceBusy` subclass raised when another process holds it.
    """

    resource: str
    name: str
    busy_error: type[ResourceBusy] = ResourceBusy
    owner: str = field(default_factory=default_owner)
    directory: Path = field(default_factory=lock_dir)
    _fd: int | None = field(default=None, init=False, repr=False)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}.lock"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout_s: float = 0.0, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock, waiting at most `timeout_s` seconds (0: try once); `on_wait(message)` is told
        when the wait starts and every PROGRESS_EVERY_S seconds after.

        Raises `busy_error` ("busy: held by PID …") when it stays held, ConfigError when the lock
        directory or file cannot be created or opened.
        """
        if self.held:
            return
        prepare_lock_dir(self.directory, self.resource)
        deadline = time.monotonic() + max(0.0, timeout_s)
        next_note = time.monotonic()
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                os.close(fd)
            now = time.monotonic()
            if now >= deadline:
                raise self._busy(waited_s=timeout_s) from None
            if on_wait is not None and now >= next_note:
                on_wait(f"{self.resource} is busy: {self._holder_text()}; waiting up to "
                        f"{deadline - now:.0f} s more (edgehil_lock_timeout)")
                next_note = now + PROGRESS_EVERY_S
            time.sleep(min(POLL_S, max(0.0, deadline - now)))
        self._fd = fd
        holder = Holder(pid=os.getpid(), host=socket.gethostname(),
                        since=datetime.now(timezone.utc).isoformat(timespec="seconds"), owner=self.owner,
                        resource=self.resource, user=_user())
        try:  # the record replaces whatever a dead holder left; the lock holds even if this fails
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
        except OSError:
            pass  # a contender's message then lacks the holder's name, nothing worse

    def release(self) -> None:
        """Give the lock back (idempotent). The record is cleared first, while the lock is still ours; the
        file itself stays (see the module docstring)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a stale record is replaced by the next holder
        os.close(fd)  # closing the last descriptor drops the flock

    def holder(self) -> Holder | None:
        """The recorded holder, or None when nothing (readable) is recorded."""
        try:
            with open(self.path, "rb") as handle:
                data = json.loads(handle.read(MAX_HOLDER_BYTES))
            return Holder(**data)
        except (OSError, ValueError, TypeError):
            return None

    def _open(self) -> int:
        try:
            # O_NOFOLLOW: a symlink planted under the lock name must not make us create or truncate its target.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, LOCK_FILE_MODE)
        except OSError as exc:
            raise ConfigError(f"{self.resource}: cannot open the lock file {self.path}: {exc.strerror}. Its "
                              "creator must let every user of the lab read and write it (mode 0666), or set "
                              f"{LOCK_DIR_ENV} to another directory") from exc
        try:
            if os.fstat(fd).st_uid == os.getuid():
                os.fchmod(fd, LOCK_FILE_MODE)  # the umask cut it at creation
        except OSError:
            pass  # another user's file: its mode is its creator's business (checked by the open above)
        return fd

    def _holder_text(self) -> str:
        holder = self.holder()
        if holder is None or (holder.host == socket.gethostname() and not _pid_alive(holder.pid)):
            return "held by another process that has not recorded itself yet"
        return f"held by {holder.describe()}"

    def _busy(self, *, waited_s: float) -> ResourceBusy:
        waited = f" after waiting {waited_s:g} s" if waited_s > 0 else ""
        return self.busy_error(
            f"{self.resource} is busy: {self._holder_text()}{waited}. Wait for that run to finish or stop it; "
            "set the ini value edgehil_lock_timeout = SECONDS (or -o edgehil_lock_timeout=SECONDS) to wait for "
            f"it instead of failing; under pytest-xdist use --dist loadgroup. Lock file: {self.path}")

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or the platform cannot tell): assume alive
    return True
