"""CHASE_DB1 figures as the retinal-vessel literature computes them, checked from outside: a data set laid
out as the public release (real JPEG/PNG files), the model run with ai_edge_litert directly, the AUC as a
Mann-Whitney statistic and the accuracy in numpy (tests/chase_layout.py), against what the suite records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_edgehil.errors import DatasetError
from pytest_edgehil.measure.datasets import load_chase_db1
from pytest_edgehil.results.gate import context_flags
from pytest_edgehil.results.store import ResultRecord, load_results

from .chase_layout import (
    STEMS,
    TEST_STEMS,
    litert_probabilities,
    mann_whitney_auc,
    pixel_accuracy,
    write_chase_db1,
)
from .conftest import MODELS, REPO

SIZE = 128  # qsegment's input

# Loose limits (used with --budgets-only): the figures are compared with an independent computation here,
# whatever a stand-in model scores on made-up fundi.
BUDGETS = """
[[budget]]
model = "qsegment"
device = "imx500"
[budget.limits]
chase_roc_auc = { min = 0.5, source = "test" }
chase_binary_accuracy = { min = 0.5, source = "test" }
"""


def expected_scores(root: Path, stems: tuple[str, ...]) -> tuple[float, float]:
    """AUC and accuracy over the pooled pixels of `stems`, images resized bilinearly and first-observer masks
    by nearest neighbour to the model's input, as the loader's documentation says."""
    images = [np.asarray(Image.open(root / f"{s}.jpg").convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
              for s in stems]
    masks = np.stack([np.asarray(Image.open(root / f"{s}_1stHO.png").convert("L")
                                 .resize((SIZE, SIZE), Image.Resampling.NEAREST)) > 127 for s in stems])
    prob = litert_probabilities(MODELS / "qsegment.tflite", images)
    return mann_whitney_auc(prob, masks), pixel_accuracy(prob, masks)


def test_the_suite_scores_chase_db1_on_the_test_split_and_records_the_protocol(edgehil_project, tmp_path):
    """Q-Segment's 96.97 % / 97.25 % are test-set figures; a model trained on CHASE_DB1's first 20 images and
    scored on all 28 would pass its published bound on its own training data."""
    root = tmp_path / "CHASE_DB1"
    write_chase_db1(root)
    auc_test, accuracy_test = expected_scores(root, TEST_STEMS)
    auc_all, _ = expected_scores(root, STEMS)
    assert abs(auc_all - auc_test) > 1e-4  # the split changes the figure: the test below can tell them apart
    edgehil_project.makefile(".toml", budgets=BUDGETS)
    edgehil_project.makepyfile(test_accuracy=(REPO / "suites" / "test_accuracy.py").read_text())
    saved = tmp_path / "results.json"
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--dataset-root={root}",
                                       "--budgets=budgets.toml", "--budgets-only", f"--edgehil-save={saved}", "-p", "no:cacheprovider",
                                       "-k", "chase")
    result.assert_outcomes(passed=1)
    records = {r.metric: r for r in load_results(saved).records}
    assert records["chase_roc_auc"].value == pytest.approx(auc_test, abs=1e-9)
    assert records["chase_binary_accuracy"].value == pytest.approx(accuracy_test, abs=1e-9)
    context = records["chase_roc_auc"].context or {}
    assert "Image_11L" in str(context.get("eval_split")) and "Image_14R" in str(context.get("eval_split"))
    assert "all pixels" in str(context.get("eval_pixels"))


def test_the_splits_are_the_literature_s_and_named_by_stem(tmp_path):
    write_chase_db1(tmp_path)
    assert load_chase_db1(tmp_path, split="test").ids == TEST_STEMS
    assert load_chase_db1(tmp_path, split="train").ids == STEMS[:20]
    assert load_chase_db1(tmp_path).ids == STEMS  # the loader's default stays every image found


def test_a_test_split_with_images_missing_is_refused_naming_them(tmp_path):
    write_chase_db1(tmp_path, STEMS[:-2])
    with pytest.raises(DatasetError, match=r"test split.*Image_14L, Image_14R.*split='all'"):
        load_chase_db1(tmp_path, split="test")


def test_an_unknown_split_is_refused(tmp_path):
    write_chase_db1(tmp_path, TEST_STEMS)
    with pytest.raises(DatasetError, match=r"split 'val'.*all, test, train"):
        load_chase_db1(tmp_path, split="val")


def test_a_comparison_of_figures_on_two_splits_says_so():
    """A baseline scored on all 28 images against a candidate on the test 8 is no like-for-like change."""
    def scored_on(split: str) -> ResultRecord:
        return ResultRecord(pair="qsegment-imx500", model="qsegment", device="imx500", kind="imx500",
                            metric="chase_roc_auc", value=0.97, unit="", backend="SIMULATED", status="info",
                            bound="", margin_rel=None, samples=8, source="", context={"eval_split": split})

    assert context_flags(scored_on("all: every image found"), scored_on("test: Image_11L..Image_14R")) == [
        "evaluation split differs: all: every image found → test: Image_11L..Image_14R"]
