"""The `edgehil` console script: `inspect` in text and JSON, errors as one line and exit status 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_edgehil.cli import EXIT_ERROR, human_bytes, human_count, main
from pytest_edgehil.model.info import analyze_model

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
CONV = DATA / "conv_int8.tflite"


@pytest.mark.parametrize(("value", "text"), [
    (640, "640"), (1_000, "1 k"), (2_368, "2.37 k"), (600_064, "600 k"), (1_179_648, "1.18 M"),
    (8_410_000, "8.41 M"), (301_054_376, "301 M"), (5.6e9, "5.6 G"),
])
def test_human_count(value: float, text: str) -> None:
    assert human_count(value) == text


@pytest.mark.parametrize(("size", "text"), [(74, "74 B"), (24_576, "24.0 KiB"), (1_505_280, "1.4 MiB")])
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


def test_inspect_prints_the_analysis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(CONV)]) == 0
    out = capsys.readouterr().out
    info = analyze_model(CONV)
    assert hashlib.sha256(CONV.read_bytes()).hexdigest() in out
    assert f"{human_count(info.macs)} ({info.macs:,})" in out and "1.18 M" in out
    assert f"({info.parameters:,})" in out and "weights int8" in out
    assert f"({info.peak_activation_bytes:,} bytes" in out
    assert "int8     [1, 32, 32, 8]" in out and f"zero_point={info.inputs[0].zero_point}" in out
    assert "CONV_2D x1" in out and "100.0 %" in out


def test_inspect_json_is_the_model_info(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "skip_int8.tflite"
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == analyze_model(path).to_dict()


def test_inspect_of_a_non_model_is_one_line_on_stderr(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "photo.tflite"
    bogus.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert main(["inspect", str(bogus)]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "photo.tflite" in lines[0] and lines[0].startswith("edgehil inspect: error:")


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_ERROR
    assert "edgehil inspect MODEL.tflite" in capsys.readouterr().err
    assert main(["inspect"]) == EXIT_ERROR
    assert main(["no-such-command"]) == EXIT_ERROR


def test_runs_as_a_module_in_a_subprocess() -> None:
    path = DATA / "mixed_float_io.tflite"
    done = subprocess.run([sys.executable, "-m", "pytest_edgehil.cli", "inspect", str(path), "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["name"] == "mixed_float_io" and data["macs"] == analyze_model(path).macs
    assert data["op_counts"]["TRANSPOSE_CONV"] == 1
