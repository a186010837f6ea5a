"""A model whose card's task picks a shipped evaluation set of another image size: the refusal names the
set's file and the card's task that picked it, not only "an image of shape [128, 128, 3]".

Seen from outside: a lab engineer's 16x16 classifier with `"task": "binary-segmentation"` in its card (and a
`roc_auc` limit) failed with "an image of shape [128, 128, 3] does not fit its input", with no word of where
that image came from. The set for each task is the table in docs/models.md (binary-segmentation:
vessels_eval.npz); TinyTracker (96x96x1) stands in for the user's model.
"""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import MODELS
from .latency_project import shipped_suite


def test_the_eval_set_the_card_s_task_picked_is_named(pytester: pytest.Pytester) -> None:
    models = pytester.path / "models"
    models.mkdir()
    shutil.copy(MODELS / "tinytracker.tflite", models / "mine.tflite")
    (models / "mine.json").write_text(json.dumps({"task": "binary-segmentation"}), encoding="utf-8")
    (pytester.path / "budgets.toml").write_text(
        '[[budget]]\nmodel = "mine"\ndevice = "coral"\n[budget.limits]\nroc_auc = { min = 0.5 }\n', encoding="utf-8")
    pytester.makeini(f"""
        [pytest]
        edgehil_models_dir = {models}
        edgehil_budgets = budgets.toml
    """)
    shipped_suite(pytester, "test_accuracy")
    result = pytester.runpytest("--device=coral", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(errors=1, skipped=3)  # refused at the eval_set fixture; gaze, CHASE_DB1: no limit
    out = result.stdout.str()
    assert "vessels_eval.npz" in out and "'binary-segmentation'" in out and "mine.json" in out, out[-3000:]
