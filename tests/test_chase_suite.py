"""The reference suite's CHASE_DB1 test run to the end on a simulated board: CI has no CHASE_DB1, so
`pytest suites/ --device=all` always skips it, and the only other test of it checked that it skips on a
sensor-input board. Here a directory in CHASE_DB1's layout (Image_NNx.jpg + Image_NNx_1stHO.png) holds eight
of the shipped vessel evaluation images, under the test split's names (the segmentation suite's own set). Checked to fail with each image
flipped against its mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_edgehil.results.store import load_results

from .conftest import REPO

# CHASE_DB1's test split (the last 8 of its 28 images), which the suite scores (docs/datasets.md).
STEMS = [f"Image_{n}{eye}" for n in (11, 12, 13, 14) for eye in "LR"]


def test_the_chase_db1_suite_test_runs_and_scores_the_images_it_loaded(edgehil_project: pytest.Pytester,
                                                                       tmp_path: Path) -> None:
    shipped = np.load(REPO / "fixtures" / "data" / "vessels_eval.npz")
    root = tmp_path / "chase"
    root.mkdir()
    for stem, image, mask in zip(STEMS, shipped["images"], shipped["masks"]):
        Image.fromarray(image).save(root / f"{stem}.jpg", quality=95)
        Image.fromarray((mask > 0).astype(np.uint8) * 255).save(root / f"{stem}_1stHO.png")
    conftest = (REPO / "suites" / "conftest.py").read_text(encoding="utf-8").replace(
        'Path(__file__).resolve().parent.parent / "fixtures" / "data"', f'Path({str(REPO / "fixtures" / "data")!r})')
    edgehil_project.makeconftest(conftest)
    edgehil_project.makepyfile(test_accuracy=(REPO / "suites" / "test_accuracy.py").read_text(encoding="utf-8"))
    # The card's CHASE_DB1 minimums (AUC 0.9697) are for the real images; these eight, JPEG-compressed, score
    # AUC ≈ 0.93. A budget of better than chance keeps both checks running (the first failing would stop
    # the second) and still fails a CHASE path that scores at chance (e.g. images fed unscaled).
    budgets = (REPO / "fixtures" / "budgets.toml").read_text(encoding="utf-8")
    budgets = budgets.replace('chase_roc_auc = { min = 0.9697,', 'chase_roc_auc = { min = 0.75,').replace(
        'chase_binary_accuracy = { min = 0.9725,', 'chase_binary_accuracy = { min = 0.75,')
    assert budgets.count("min = 0.75,") == 2
    (tmp_path / "budgets.toml").write_text(budgets, encoding="utf-8")
    out = tmp_path / "r.json"
    result = edgehil_project.runpytest("--device=imx500", "--model=qsegment", f"--dataset-root={root}",
                                       f"--budgets={tmp_path / 'budgets.toml'}",
                                       f"--edgehil-save={out}", "-k", "chase", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1)
    records = {r.metric: r for r in load_results(out).records if r.metric.startswith("chase_")}
    assert set(records) == {"chase_roc_auc", "chase_binary_accuracy"}
    for record in records.values():
        assert record.samples == len(STEMS) and record.pair == "qsegment-imx500"
        assert record.value is not None and 0.75 <= record.value <= 1.0 and record.status == "pass"
