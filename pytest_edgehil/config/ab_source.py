"""Where a same-session A/B run takes its baseline models from: `--edgehil-ab=SOURCE`.

SOURCE is either

* a directory holding the baseline's `.tflite` files under the catalog's file names
  (`DIR/qsegment.tflite` is the baseline of the catalog's `qsegment`), or
* `git:REV` — the same file as committed at revision REV of the repository the model lives in
  (`git show REV:path/to/qsegment.tflite`): `--edgehil-ab=git:origin/main` compares a branch's models
  with main's without a second checkout. Git LFS pointers are refused (fetch the objects first).

The source is checked when the run starts (the directory exists, the revision resolves) so a typo fails
at start-up; each model's baseline bytes are read on first use. No pytest.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pytest_edgehil.errors import ConfigError

GIT_PREFIX = "git:"
GIT_TIMEOUT_S = 30.0
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


@dataclass(frozen=True)
class BaselineModels:
    """The baseline side of an A/B run: a directory or a git revision."""

    spec: str  # as given, for messages and the records
    directory: Path | None = None
    revision: str | None = None
    _cache: dict[Path, bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, option: str = "--edgehil-ab") -> BaselineModels:
        """Validate SOURCE now. Raises ConfigError naming the option, what is wrong and what to give."""
        text = text.strip()
        if text.startswith(GIT_PREFIX):
            revision = text[len(GIT_PREFIX):].strip()
            if not revision:
                raise ConfigError(f"{option} {text!r}: name a revision after 'git:', e.g. git:origin/main or git:HEAD~1")
            return cls(text, revision=revision)
        directory = Path(text).expanduser()
        if not directory.is_dir():
            raise ConfigError(f"{option} {text!r}: not a directory; give a directory holding the baseline's .tflite "
                              "files under the catalog's names, or git:REV for the models committed at a revision")
        return cls(text, directory=directory.resolve())

    def model_bytes(self, model_path: Path, name: str) -> bytes:
        """The baseline's bytes of the catalog model stored at `model_path`. Raises ConfigError when the
        source does not hold it."""
        model_path = model_path.resolve()
        if model_path not in self._cache:
            self._cache[model_path] = (self._from_git(model_path, name) if self.revision is not None
                                       else self._from_directory(model_path, name))
        return self._cache[model_path]

    def _from_directory(self, model_path: Path, name: str) -> bytes:
        assert self.directory is not None
        candidate = self.directory / model_path.name
        if not candidate.is_file():
            raise ConfigError(f"--edgehil-ab {self.spec}: no baseline of model {name!r}: {candidate} does not exist; "
                              f"put the baseline's {model_path.name} there, or deselect the model")
        return candidate.read_bytes()

    def _git(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT_S, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"--edgehil-ab {self.spec}: cannot run git in {cwd} ({exc}); install git, or give a "
                              "directory of baseline models instead") from exc

    def _from_git(self, model_path: Path, name: str) -> bytes:
        assert self.revision is not None
        top = self._git(model_path.parent, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            raise ConfigError(f"--edgehil-ab {self.spec}: model {name!r} ({model_path}) is not in a git repository; "
                              "give a directory of baseline models instead")
        root = Path(top.stdout.decode().strip()).resolve()
        relative = model_path.relative_to(root).as_posix()
        shown = self._git(root, "show", f"{self.revision}:{relative}")
        if shown.returncode != 0:
            detail = shown.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"--edgehil-ab {self.spec}: git cannot show {self.revision}:{relative} "
                              f"({detail[0]}); check the revision exists (git fetch) and held the model")
        if shown.stdout.startswith(_LFS_POINTER):
            raise ConfigError(f"--edgehil-ab {self.spec}: {self.revision}:{relative} is a Git LFS pointer, not the "
                              "model; `git lfs fetch` that revision, or give a directory of baseline models")
        return shown.stdout
