"""The hardware path never imports the simulation: a static scan of every module outside `sim/`, and the
modules actually loaded when the hardware path is imported."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "pytest_edgehil"
SIM = "pytest_edgehil.sim"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_sim_imports(path: Path) -> list[str]:
    """Imports of pytest_edgehil.sim that run when the module is imported: module body, class bodies and
    module-level if/try blocks, except `if TYPE_CHECKING:` blocks. Imports inside functions are allowed."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found: list[str] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.extend(f"{path.name}:{node.lineno} import {a.name}" for a in node.names
                             if a.name == SIM or a.name.startswith(SIM + "."))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
                if any(t == SIM or t.startswith(SIM + ".") for t in targets):
                    found.append(f"{path.name}:{node.lineno} from {base} import …")
            for field in ("body", "orelse", "finalbody", "handlers"):
                child = getattr(node, field, None)
                if isinstance(child, list) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    visit([c for c in child if isinstance(c, ast.stmt)] if field != "handlers"
                          else [s for h in child for s in h.body])

    visit(tree.body)
    return found


def test_scanner_sees_a_top_level_sim_import(tmp_path):
    # The check can fail: a module that imports the simulation at its top is reported.
    bad = PACKAGE / "link" / "_scan_probe.py"
    try:
        bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pytest_edgehil.sim import x\n"
                       "def f():\n    from pytest_edgehil.sim import y\n"
                       "try:\n    from ..sim.profile import DeviceProfile\nexcept ImportError:\n    pass\n",
                       encoding="utf-8")
        assert _top_level_sim_imports(bad) == ["_scan_probe.py:7 from pytest_edgehil.sim.profile import …"]
    finally:
        bad.unlink()


def test_no_module_outside_sim_imports_sim_at_top_level():
    offenders = {str(p.relative_to(REPO)): hits for p in sorted(PACKAGE.rglob("*.py"))
                 if "sim" not in p.relative_to(PACKAGE).parts[:1] and (hits := _top_level_sim_imports(p))}
    assert offenders == {}, f"top-level imports of {SIM} on the hardware path: {offenders}"


def test_importing_the_hardware_path_loads_no_sim_module(tmp_path):
    modules = ["pytest_edgehil.plugin", "pytest_edgehil.plugin.gate", "pytest_edgehil.bench"] + sorted(
        _module_name(p) for layer in ("link", "instruments", "measure", "config")
        for p in (PACKAGE / layer).glob("*.py"))
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m == {SIM!r} or m.startswith({SIM + '.'!r})))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pytest_edgehil.measure.datasets" in modules and "pytest_edgehil.bench" in modules
    assert result.stdout.strip() == "[]"
