"""Cross-process locks on bench resources: one owner per board and per analyzer channel.

POSIX lets two processes open one serial port; each then reads part of the other's bytes, and one run can
measure the model the other one loaded. Two things stop that (docs/sharing-a-lab.md):

- the port is opened with pyserial's `exclusive=True` (an advisory `flock` on the device node, seen by
  every process of every user that asks for it);
- before opening it, the bench takes a `ResourceLock` named after the board (its USB serial number, else
  the resolved port) — a `filelock` lock file that also says who holds it, so the second process fails
  with "busy: held by PID … on HOST since …: COMMAND" instead of an anonymous "resource unavailable".

The lock is an OS-level `flock` on an open file: when its holder dies (SIGKILL included) the kernel
drops it, so a crashed run never leaves a board locked. Who holds it is written beside the lock file
(`NAME.holder.json`), because a contender may truncate or rewrite the lock file itself while trying it.

Lock files live in a per-user directory: `$EDGEHIL_LOCK_DIR`, else `$XDG_RUNTIME_DIR/edgehil-locks`, else
`<system temp dir>/edgehil-locks-<uid>`. Between users on one machine the exclusive open of the port
still refuses the second user (without the holder's name: see `lsof PORT`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from pytest_edgehil.errors import ConfigError, ResourceBusy

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

LOCK_DIR_ENV = "EDGEHIL_LOCK_DIR"
POLL_S = 0.2  # how often a waiting acquire tries again
PROGRESS_EVERY_S = 10.0  # how often a waiting acquire says what it waits for


def lock_dir() -> Path:
    """Where lock files live (see the module docstring); created on first use by `ResourceLock`."""
    override = os.environ.get(LOCK_DIR_ENV)
    if override:
        return Path(override)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "edgehil-locks"
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"edgehil-locks-{user}"


def lock_name(prefix: str, identity: str) -> str:
    """A file name for `identity` (a port path, URL or serial number): readable part + short digest."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identity).strip("_.")[:60]
    return f"{prefix}-{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def default_owner() -> str:
    """What this process is, for a busy message: its command line (and xdist worker, if one)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    command = " ".join(sys.argv) or sys.executable
    return f"{command} [xdist {worker}]" if worker else command


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written by the holder right after acquiring, read by whoever finds it busy."""

    pid: int
    host: str
    since: str  # ISO 8601, UTC, seconds
    owner: str  # the holder's command line (pytest argv)
    resource: str

    def describe(self) -> str:
        return f"PID {self.pid} on {self.host} since {self.since} ({self.owner})"


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
    _lock: FileLock | None = field(default=None, init=False, repr=False)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}.lock"

    @property
    def holder_path(self) -> Path:
        return self.directory / f"{self.name}.holder.json"

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def acquire(self, timeout_s: float = 0.0, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock, waiting at most `timeout_s` seconds (0: try once); `on_wait(message)` is told
        when the wait starts and every PROGRESS_EVERY_S seconds after.

        Raises `busy_error` ("busy: held by PID …") when it stays held, ConfigError when the lock
        directory cannot be created.
        """
        if self.held:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"{self.resource}: cannot create the lock directory {self.directory}: "
                              f"{exc.strerror}; set {LOCK_DIR_ENV} to a writable directory") from exc
        lock = FileLock(str(self.path))
        deadline = time.monotonic() + max(0.0, timeout_s)
        next_note = time.monotonic()
        while True:
            try:
                lock.acquire(timeout=0)
                break
            except Timeout:
                now = time.monotonic()
                if now >= deadline:
                    raise self._busy(waited_s=timeout_s) from None
                if on_wait is not None and now >= next_note:
                    on_wait(f"{self.resource} is busy: {self._holder_text()}; waiting up to "
                            f"{deadline - now:.0f} s more (edgehil_lock_timeout)")
                    next_note = now + PROGRESS_EVERY_S
                time.sleep(min(POLL_S, max(0.0, deadline - now)))
        self._lock = lock
        holder = Holder(pid=os.getpid(), host=socket.gethostname(),
                        since=datetime.now(timezone.utc).isoformat(timespec="seconds"), owner=self.owner,
                        resource=self.resource)
        try:
            _write_json_atomically(self.holder_path, asdict(holder))
        except OSError:
            pass  # the lock holds without it; a contender's message then lacks the holder's name

    def release(self) -> None:
        """Give the lock back (idempotent). The holder file goes first, while the lock is still ours."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            holder = self.holder()
            if holder is not None and holder.pid == os.getpid():
                self.holder_path.unlink()
        except OSError:
            pass  # a stale holder file is overwritten by the next holder
        lock.release()

    def holder(self) -> Holder | None:
        """The recorded holder, or None when nothing (readable) is recorded."""
        try:
            data = json.loads(self.holder_path.read_text(encoding="utf-8"))
            return Holder(**data)
        except (OSError, ValueError, TypeError):
            return None

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


def _write_json_atomically(path: Path, data: dict[str, object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
