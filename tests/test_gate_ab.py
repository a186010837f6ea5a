"""Same-session A/B through the real plugin and twins: `--edgehil-ab=DIR` and `--edgehil-ab=git:REV`."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_edgehil.config.ab_source import BaselineModels
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.records import paired_rounds
from pytest_edgehil.results.store import load_results

from .conftest import MODELS, REPO

AB_SUITE = (REPO / "suites" / "test_ab.py").read_text(encoding="utf-8")
WIDE = MODELS / "variants" / "qsegment_wide.tflite"


def project(pytester: pytest.Pytester, candidate: Path) -> Path:
    """A project whose catalog's `qsegment` is `candidate`; returns its models directory."""
    models = pytester.path / "models"
    models.mkdir()
    install(candidate, models)
    pytester.makeini(f"[pytest]\nedgehil_models_dir = {models}\n")
    pytester.makepyfile(test_ab=AB_SUITE)
    return models


def install(candidate: Path, models: Path) -> None:
    """`candidate` as the catalog's `qsegment`, its card's sha256 and size updated as a developer who
    changed the model does (a card stating another file's hash is refused: test_model_card_hash.py)."""
    data = candidate.read_bytes()
    (models / "qsegment.tflite").write_bytes(data)
    card = json.loads((MODELS / "qsegment.json").read_text(encoding="utf-8"))
    card.update(sha256=hashlib.sha256(data).hexdigest(), file_bytes=len(data))
    (models / "qsegment.json").write_text(json.dumps(card), encoding="utf-8")


def shipped_baseline(pytester: pytest.Pytester) -> Path:
    """A `--edgehil-ab` baseline folder ("main-models") holding the shipped `qsegment`; returns it."""
    folder = pytester.path / "main-models"
    folder.mkdir()
    shutil.copy(MODELS / "qsegment.tflite", folder / "qsegment.tflite")
    return folder


def run_ab(pytester: pytest.Pytester, source: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest("--device=imx500", f"--model={pytester.path / 'models' / 'qsegment.tflite'}",
                              f"--edgehil-ab={source}", "-p", "no:cacheprovider", *extra)


def test_a_heavier_candidate_fails_the_ab_gate_and_the_same_model_passes(pytester: pytest.Pytester) -> None:
    project(pytester, WIDE)
    narrow = shipped_baseline(pytester)
    out = pytester.path / "ab.json"
    result = run_ab(pytester, str(narrow), f"--edgehil-save={out}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*edgehil A/B gate: candidate vs*same session*",
                                 ("FAIL qsegment-imx500 inference_mj: *one-sided p = * on A/B paired rounds (3 rounds,"
                                  " one session)*energy threshold 2.5%*model SHA-256 differs*")])
    saved = load_results(out)
    rounds = paired_rounds(next(r for r in saved.records if r.metric == "inference_mj"))
    assert rounds is not None and len(rounds[0]) == len(rounds[1]) == 3
    # The baseline directory holding the candidate itself: an A/A run in one session passes.
    shutil.copy(WIDE, narrow / "qsegment.tflite")
    same = run_ab(pytester, str(narrow))
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["*edgehil gate passed (2 SAME*"])


def test_baseline_from_a_git_revision(pytester: pytest.Pytester) -> None:
    models = project(pytester, MODELS / "qsegment.tflite")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=pytester.path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", "models")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "narrow")
    install(WIDE, models)  # the change under test, not committed
    result = run_ab(pytester, "git:HEAD")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*candidate vs git:HEAD*", "FAIL qsegment-imx500 inference_mj*"])
    bad = run_ab(pytester, "git:no-such-rev")
    assert bad.ret == pytest.ExitCode.TESTS_FAILED
    bad.stdout.fnmatch_lines(["*git cannot show no-such-rev:models/qsegment.tflite*"])


def test_missing_sources_are_refused_naming_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory.*git:REV"):
        BaselineModels.parse(str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="name a revision"):
        BaselineModels.parse("git:")
    source = BaselineModels.parse(str(tmp_path))
    with pytest.raises(ConfigError, match="no baseline of model 'qsegment'.*qsegment.tflite does not exist"):
        source.model_bytes(MODELS / "qsegment.tflite", "qsegment")


def test_without_ab_the_suite_skips(pytester: pytest.Pytester) -> None:
    project(pytester, MODELS / "qsegment.tflite")
    result = pytester.runpytest("--device=imx500", f"--model={pytester.path / 'models' / 'qsegment.tflite'}",
                                "-p", "no:cacheprovider", "-rs")
    result.stdout.fnmatch_lines(["*same-session A/B needs --edgehil-ab*"])
    assert result.ret == pytest.ExitCode.OK
