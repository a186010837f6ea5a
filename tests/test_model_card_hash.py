"""A model card's `sha256` is compared with the file's bytes on every path that loads the model.

The card states the SHA-256 of the .tflite it describes. A file whose bytes differ (re-exported, damaged
in a copy, swapped by hand) measured under that card would report figures for another model than the
card claims; it is refused with ModelCardMismatch naming the model, the file, both hashes and the fix.
Expected hashes are computed here with hashlib from the bytes the test wrote, not by the code under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_edgehil.cli import main
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelCardMismatch, ModelError
from pytest_edgehil.starter import write_starter_kit

from .conftest import REPO

SHIPPED = REPO / "fixtures" / "models"


def catalog_copy(tmp_path: Path, name: str = "qsegment") -> tuple[Path, Path]:
    """A catalog directory holding a copy of one shipped model and its card: (tflite, card)."""
    models = tmp_path / "models"
    models.mkdir(parents=True)
    for suffix in (".tflite", ".json"):
        shutil.copy(SHIPPED / f"{name}{suffix}", models / f"{name}{suffix}")
    return models / f"{name}.tflite", models / f"{name}.json"


def grow(path: Path) -> tuple[str, str]:
    """Append one byte to the file (a flatbuffer still parses; its bytes are no longer the card's).
    (hash before, hash after), both from hashlib."""
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(path.read_bytes() + b"\0")
    return before, hashlib.sha256(path.read_bytes()).hexdigest()


def assert_names_everything(message: str, name: str, path: Path, stated: str, actual: str) -> None:
    assert repr(name) in message or name in message
    assert str(path) in message or path.name in message
    assert stated in message and actual in message
    assert "card" in message and ("re-export" in message or "update" in message)


def test_the_shipped_cards_state_the_hashes_of_their_files() -> None:
    # The premise: a card's sha256 is the file's, so the check refuses nothing that ships.
    cards = sorted(SHIPPED.rglob("*.json"))
    assert cards
    for card in cards:
        stated = json.loads(card.read_text()).get("sha256")
        if stated is not None:
            assert hashlib.sha256(card.with_suffix(".tflite").read_bytes()).hexdigest() == stated, card
    for name in ModelCatalog(SHIPPED).names():
        ModelCatalog(SHIPPED).get(name).check()


def test_a_model_whose_bytes_differ_from_its_card_is_refused_by_the_catalog(tmp_path: Path) -> None:
    tflite, _ = catalog_copy(tmp_path)
    stated, actual = grow(tflite)
    model = ModelCatalog(tflite.parent).get("qsegment")
    with pytest.raises(ModelCardMismatch) as refused:
        model.check()
    assert_names_everything(str(refused.value), "qsegment", tflite, stated, actual)
    assert isinstance(refused.value, ModelError)
    with pytest.raises(ModelCardMismatch):  # the bytes the device is sent (ensure_model) come from here too
        model.artifact_for("coral")
    with pytest.raises(ModelCardMismatch):  # a path given as --model with its card beside it
        ModelCatalog(tmp_path).get(str(tflite)).check()


def test_a_card_stating_another_hash_is_refused(tmp_path: Path) -> None:
    tflite, card = catalog_copy(tmp_path)
    data = json.loads(card.read_text())
    other = hashlib.sha256(b"another model").hexdigest()
    data["sha256"] = other
    card.write_text(json.dumps(data))
    with pytest.raises(ModelCardMismatch) as refused:
        ModelCatalog(tflite.parent).get("qsegment").check()
    assert_names_everything(str(refused.value), "qsegment", tflite, other,
                            hashlib.sha256(tflite.read_bytes()).hexdigest())


def test_a_card_without_a_hash_checks_nothing(tmp_path: Path) -> None:
    tflite, card = catalog_copy(tmp_path)
    data = json.loads(card.read_text())
    del data["sha256"], data["file_bytes"]
    card.write_text(json.dumps(data))
    grow(tflite)
    ModelCatalog(tflite.parent).get("qsegment").check()


def test_inspect_refuses_a_file_its_card_does_not_describe(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    tflite, _ = catalog_copy(tmp_path)
    stated, actual = grow(tflite)
    assert main(["inspect", str(tflite)]) == 2
    err = capsys.readouterr().err
    assert_names_everything(err, "qsegment", tflite, stated, actual)


def test_init_does_not_copy_a_shipped_model_that_differs_from_its_card(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # A damaged installation: the kit's model file is not the one its card describes.
    from pytest_edgehil import starter

    fake_root = tmp_path / "shipped"
    tflite, _ = catalog_copy(fake_root)
    stated, actual = grow(tflite)
    real = starter.shipped_files

    def shipped(item: str):  # the real kit, with the models folder replaced by the damaged copy
        if item == "fixtures/models":
            return iter([(f"fixtures/models/{p.name}", p) for p in sorted(tflite.parent.iterdir())])
        return real(item)

    monkeypatch.setattr(starter, "shipped_files", shipped)
    dest = tmp_path / "kit"
    with pytest.raises(ModelCardMismatch) as refused:
        write_starter_kit(dest)
    assert_names_everything(str(refused.value), "qsegment", tflite, stated, actual)
    assert not dest.exists(), "nothing is written when the kit is damaged"


def test_the_suites_refuse_a_changed_model_at_start_up(tmp_path: Path) -> None:
    write_starter_kit(tmp_path)
    tflite = tmp_path / "fixtures" / "models" / "qsegment.tflite"
    stated, actual = grow(tflite)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([sys.executable, "-m", "pytest", "suites/test_latency.py", "--device=coral", "-q",
                           "-p", "no:cacheprovider", "-x"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False, env=env)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "passed" not in out.splitlines()[-1], out[-3000:]
    assert stated in out and actual in out, out[-3000:]


def test_an_upper_case_hex_digest_in_a_card_is_the_same_hash(tmp_path: Path) -> None:
    """Windows' `certutil -hashfile` and `Get-FileHash` print SHA-256 in upper case: the card is right and
    was refused by its pattern (a false refusal); a digest of other bytes in upper case is still refused."""
    data = (SHIPPED / "qsegment.tflite").read_bytes()
    (tmp_path / "mine.tflite").write_bytes(data)
    card = tmp_path / "mine.json"
    card.write_text(json.dumps({"sha256": hashlib.sha256(data).hexdigest().upper()}), encoding="utf-8")
    assert ModelCatalog(tmp_path).get("mine").data == data
    card.write_text(json.dumps({"sha256": hashlib.sha256(data + b"x").hexdigest().upper()}), encoding="utf-8")
    with pytest.raises(ModelCardMismatch):
        _ = ModelCatalog(tmp_path).get("mine").data
