"""A model card whose `input.shape` or `output.shape` contradicts the file is refused, like a wrong sha256.

Seen from outside: a card stating `input.shape` [1, 32, 32, 1] for a model whose input is [1, 16, 16, 1]
was accepted in silence ("for a static model, for readers"): every reader of the card, and every record
citing it, then describes another model. The shapes below are the shipped Q-Segment's, from its model card
and docs/models.md (1x128x128x3 → 1x128x128x1), not from the analysis under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelError

from .conftest import MODELS


def _model(tmp_path: Path, card: dict) -> None:
    shutil.copyfile(MODELS / "qsegment.tflite", tmp_path / "mine.tflite")
    (tmp_path / "mine.json").write_text(json.dumps(card), encoding="utf-8")


@pytest.mark.parametrize(("card", "said"), [
    ({"input": {"shape": [1, 32, 32, 3]}}, r"input.shape \[1, 32, 32, 3\].*\[1, 128, 128, 3\]"),
    ({"output": {"shape": [1, 128, 128, 2]}}, r"output.shape \[1, 128, 128, 2\].*\[1, 128, 128, 1\]"),
])
def test_a_card_shape_the_file_does_not_have_is_refused(tmp_path: Path, card: dict, said: str) -> None:
    _model(tmp_path, card)
    with pytest.raises(ModelError, match=rf"mine.json.*{said}"):
        ModelCatalog(tmp_path).get("mine").check()


@pytest.mark.parametrize("card", [
    {"input": {"shape": [1, 128, 128, 3]}, "output": {"shape": [1, 128, 128, 1]}},
    {"input": {"shape": [128, 128, 3]}, "output": {"shape": [128, 128]}},  # size-1 dimensions left out
    {"input": {"shape": [-1, 128, 128, 3]}},  # an open batch, as Keras writes it
])
def test_the_file_s_own_shapes_pass(tmp_path: Path, card: dict) -> None:
    _model(tmp_path, card)
    ModelCatalog(tmp_path).get("mine").check()
