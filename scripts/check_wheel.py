"""Install check: the wheel, installed (not editable) into a fresh virtualenv, runs the documented
commands green in a directory that is not the checkout.

    python scripts/check_wheel.py [--keep] [--device coral]

Steps, each timed and any failure fatal (exit status 1):
1. build the wheel from the checkout (`pip wheel --no-deps`, isolated build with hatchling);
2. check it carries every shipped file (`pytest_edgehil/_data/…`, same bytes as the checkout's top-level
   folders) and the `pytest11` / `edgehil` entry points;
3. a fresh virtualenv in a temporary directory, `pip install` of that wheel (dependencies from the index
   or pip's cache);
4. in a new empty directory: `edgehil init`, then `pytest suites/ --device=coral -q` — the commands in
   docs/install.md — with PYTHONPATH and PYTEST_ADDOPTS cleared, so nothing of the checkout can leak in.

Uses the Python that runs it for building and for the venv. Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from pytest_edgehil.resources import SHIPPED  # the checkout's own list (a stdlib-only module)

DATA_PREFIX = "pytest_edgehil/_data/"
SKIPPED_PARTS = {"__pycache__", ".pytest_cache"}


class CheckFailed(Exception):
    pass


def step(title: str):
    """Print a step's title now and its wall time when it ends."""
    class _Timer:
        def __enter__(self) -> None:
            print(f"== {title}", flush=True)
            self.start = time.monotonic()

        def __exit__(self, *exc: object) -> None:
            print(f"   {title}: {time.monotonic() - self.start:.1f} s", flush=True)
    return _Timer()


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, show_tail: int = 0) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise CheckFailed(f"`{' '.join(cmd)}` in {cwd} exited {done.returncode}:\n{output[-6000:]}")
    if show_tail:
        print("\n".join("   | " + line for line in output.strip().splitlines()[-show_tail:]), flush=True)
    return done.stdout


def expected_data() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for item in SHIPPED:
        top = REPO / item
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            rel = path.relative_to(REPO)
            if path.is_file() and not SKIPPED_PARTS & set(rel.parts) and path.suffix != ".pyc":
                files[DATA_PREFIX + rel.as_posix()] = path.read_bytes()
    return files


def check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        expected = expected_data()
        missing = sorted(set(expected) - names)
        if missing:
            raise CheckFailed(f"{wheel.name} lacks {len(missing)} shipped file(s): {', '.join(missing[:10])}")
        differing = [n for n, content in expected.items() if archive.read(n) != content]
        if differing:
            raise CheckFailed(f"{wheel.name} carries stale copies of: {', '.join(differing)}")
        extra = sorted(n for n in names if n.startswith(DATA_PREFIX) and n not in expected)
        if extra:
            raise CheckFailed(f"{wheel.name} ships data that is not in SHIPPED: {', '.join(extra)}")
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        text = archive.read(entry_points).decode()
        for needed in ("[pytest11]", "edgehil = pytest_edgehil.plugin", "edgehil = pytest_edgehil.cli:main"):
            if needed not in text:
                raise CheckFailed(f"{wheel.name}: entry_points.txt lacks {needed!r}:\n{text}")
    print(f"   {wheel.name}: {len(expected)} data files, entry points pytest11 + edgehil", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (printed)")
    parser.add_argument("--device", default="coral", help="device for the suite run (default coral)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgehil-wheel-check-"))
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("PYTEST_")}
    started = time.monotonic()
    try:
        with step("build the wheel"):
            run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(REPO)],
                cwd=work, env=env)
            wheels = sorted((work / "dist").glob("pytest_edgehil-*.whl"))
            if len(wheels) != 1:
                raise CheckFailed(f"expected one pytest_edgehil wheel in {work / 'dist'}, found {wheels}")
        with step("check the wheel's files"):
            check_wheel_contents(wheels[0])
        venv = work / "venv"
        with step("fresh virtualenv + pip install of the wheel"):
            run([sys.executable, "-m", "venv", str(venv)], cwd=work, env=env)
            run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheels[0])], cwd=work, env=env)
        project = work / "project"  # empty, and nowhere near the checkout
        project.mkdir()
        with step("edgehil init in an empty directory"):
            root = run([str(venv / "bin" / "python"), "-c",
                        "from pytest_edgehil.resources import data_root; print(data_root())"], cwd=project, env=env)
            if not Path(root.strip()).is_relative_to(venv):
                raise CheckFailed(f"the venv's pytest_edgehil reads its data from {root.strip()}, not from the venv")
            run([str(venv / "bin" / "edgehil"), "init"], cwd=project, env=env, show_tail=3)
        with step(f"pytest suites/ --device={args.device} -q"):
            run([str(venv / "bin" / "pytest"), "suites/", f"--device={args.device}", "-q", "-p", "no:cacheprovider"],
                cwd=project, env=env, show_tail=1)
    except CheckFailed as exc:
        print(f"check_wheel: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"   kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check_wheel: OK in {time.monotonic() - started:.1f} s (wheel installed in a fresh venv, "
          f"edgehil init + pytest suites/ --device={args.device} green outside the checkout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
