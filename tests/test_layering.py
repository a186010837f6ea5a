"""What the results layer may import: the gate (and everything under results/) loads neither pytest nor
scikit-learn, so `edgehil compare` and a user's own tooling can read results without the test stack."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.parametrize("module", ["pytest_edgehil.results.gate", "pytest_edgehil.results.report",
                                    "pytest_edgehil.results.summary", "pytest_edgehil.config.budgets"])
def test_results_modules_import_without_pytest_or_sklearn(module: str) -> None:
    code = (f"import {module}, sys; "
            "print(','.join(m for m in ('pytest', '_pytest', 'sklearn', 'matplotlib') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing {module} loaded {result.stdout.strip()}"


def test_no_module_under_results_names_pytest() -> None:
    for path in sorted((REPO / "pytest_edgehil" / "results").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert "import pytest" not in source and "from pytest " not in source and "_pytest" not in source, path
