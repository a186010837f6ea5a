"""The latency split prints every stage it measured, budgeted or not.

tinytracker on the Coral has budgets for end to end and energy but none for inference alone, so the
inference test does not run for that pair; the end-to-end test measured the inference stage all the same
and printed "inference ?" in the split. It now records the stage it measured (no budget: status info)
and the split prints it; a pair whose inference test runs keeps one inference record, not two.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_edgehil.results.store import load_results

from .latency_project import shipped_suite


def test_the_split_prints_an_unbudgeted_inference_stage(edgehil_project: pytest.Pytester, tmp_path: Path) -> None:
    shipped_suite(edgehil_project, "test_latency")
    saved = tmp_path / "results.json"
    result = edgehil_project.runpytest("--device=coral", f"--edgehil-save={saved}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    records = load_results(saved).records
    inference = [r for r in records if r.pair == "tinytracker-coral" and r.metric == "inference_ms"]
    assert len(inference) == 1 and inference[0].status == "info" and not inference[0].bound, inference
    readout = next(r for r in records if r.pair == "tinytracker-coral" and r.metric == "readout_ms")
    end_to_end = next(r for r in records if r.pair == "tinytracker-coral" and r.metric == "end_to_end_ms")
    # The stage is the bulk of the frame: end to end less readout and retrieval, within the medians' slack.
    assert 0 < inference[0].value < end_to_end.value - readout.value
    split = next(line for line in result.stdout.lines if line.strip().startswith("tinytracker-coral: readout"))
    assert "?" not in split
    assert re.search(rf"inference {inference[0].value:.2f} ", split), split
    # qsegment-coral has an inference budget: its inference test records the stage, once.
    assert len([r for r in records if r.pair == "qsegment-coral" and r.metric == "inference_ms"]) == 1
