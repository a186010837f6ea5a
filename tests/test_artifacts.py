"""Per-kind model artifacts in the catalog (the board gets the compiled file of its kind, its hash recorded),
and boards that infer on their own sensor frames (suites that push inputs skip there, with the reason)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pytest_edgehil.agent.litert_device import LiteRTDevice
from pytest_edgehil.agent.server import AgentServer
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.link.auth import read_token, write_new_token

from .conftest import MODELS, REPO


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """qsegment with a compiled artifact for linux-cpu (a different, loadable file: its hash tells them apart)."""
    models = tmp_path / "models"
    (models / "compiled").mkdir(parents=True)
    shutil.copy(MODELS / "qsegment.tflite", models / "qsegment.tflite")
    shutil.copy(MODELS / "lowres_seg.tflite", models / "compiled" / "qsegment_linux-cpu.tflite")
    card = json.loads((MODELS / "qsegment.json").read_text())
    card["artifacts"] = {"linux-cpu": "compiled/qsegment_linux-cpu.tflite", "coral": "compiled/missing_edgetpu.tflite"}
    (models / "qsegment.json").write_text(json.dumps(card))
    return models


def test_the_catalog_gives_each_kind_its_artifact_and_the_source_otherwise(catalog_dir):
    model = ModelCatalog(catalog_dir).get("qsegment")
    data, name = model.artifact_for("linux-cpu")
    assert name == "qsegment_linux-cpu.tflite" and data == (catalog_dir / "compiled" / name).read_bytes()
    assert model.artifact_for("imx500") == (model.data, "qsegment.tflite")
    with pytest.raises(ConfigError, match=r"declares artifact 'compiled/missing_edgetpu.tflite' for device kind 'coral'"):
        model.artifact_for("coral")


def _agent_lab(server: AgentServer, token: Path) -> str:
    return f'[devices.agent]\nkind = "linux-cpu"\nport = "{server.url}"\ntoken_file = "{token}"\nmodels = ["qsegment"]\n'


def test_the_board_gets_its_kinds_artifact_and_its_hash_is_recorded(pytester, catalog_dir, tmp_path):
    token = write_new_token(tmp_path / "agent.token")
    artifact_sha = hashlib.sha256((catalog_dir / "compiled" / "qsegment_linux-cpu.tflite").read_bytes()).hexdigest()
    with AgentServer(LiteRTDevice(), read_token(token, what="test"), port=0) as server:
        pytester.makeini(f"[pytest]\nedgehil_models_dir = {catalog_dir}\n")
        pytester.makefile(".toml", lab=_agent_lab(server, token))
        pytester.makepyfile(test_user=f"""
import pytest

@pytest.mark.edgehil_metrics("inference_ms", unbudgeted=True)
def test_artifact(edgehil_dut):
    assert edgehil_dut.loaded_sha256 == {artifact_sha!r}
""")
        result = pytester.runpytest("--lab=lab.toml", "--backend=hw", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


BUDGETS = """
[[budget]]
model = "qsegment"
device = "linux-cpu"
[budget.limits]
roc_auc = { min = 0.92, source = "the model card's figure on the shipped eval set" }
chase_roc_auc = { min = 0.9697, source = "Q-Segment on CHASE_DB1" }
"""


def test_suites_that_push_inputs_skip_on_a_board_that_infers_on_sensor_frames(pytester, tmp_path):
    token = write_new_token(tmp_path / "agent.token")
    with AgentServer(LiteRTDevice(inputs="sensor"), read_token(token, what="test"), port=0) as server:
        pytester.makeini(f"[pytest]\nedgehil_models_dir = {MODELS}\n")
        pytester.makefile(".toml", lab=_agent_lab(server, token), budgets=BUDGETS)
        conftest = (REPO / "suites" / "conftest.py").read_text().replace(
            'Path(__file__).resolve().parent.parent / "fixtures" / "data"', f'Path({str(REPO / "fixtures" / "data")!r})')
        pytester.makeconftest(conftest)
        pytester.makepyfile(test_accuracy=(REPO / "suites" / "test_accuracy.py").read_text())
        result = pytester.runpytest("--lab=lab.toml", "--budgets=budgets.toml", "--backend=hw", f"--dataset-root={tmp_path}",
                                    "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*test_accuracy.py:*device 'agent' infers on its own sensor frames*inputs:sensor*"])
    assert result.stdout.str().count("infers on its own sensor frames") == 2  # segmentation and CHASE_DB1
