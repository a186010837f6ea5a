"""What other tools read from a run: JUnit XML properties (JSON, capped, traces referenced) and pytest-html
extras (a value table and a trace image per test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pytest_edgehil.results.junit import MAX_PROPERTY_CHARS, record_property, trace_property
from pytest_edgehil.results.store import load_results

from .conftest import REPO

MAX_JUNIT_BYTES = 200_000


def test_a_record_property_is_json_without_samples_and_capped():
    record = {"pair": "q-d", "metric": "inference_ms", "value": float("nan"), "raw": [0.1] * 5000,
              "context": {"note": "x" * 5000}, "source": "paper"}
    text = record_property(record)
    data = json.loads(text)
    assert len(text) <= MAX_PROPERTY_CHARS and data["value"] is None
    assert data["raw"] == "5000 samples in the results file" and "context" not in data
    assert data["omitted"] == ["context"] and data["source"] == "paper"
    ref = json.loads(trace_property({"pair": "q-d", "time_s": [0.0] * 600, "power_w": [0.1] * 600,
                                     "windows_s": [[0, 1], [2, 3]]}, "t.py::test[q-d]"))
    assert ref["points"] == 600 and ref["windows"] == 2 and ref["test"] == "t.py::test[q-d]" and "time_s" not in ref


def test_device_all_junit_xml_is_json_and_small_and_html_has_values_and_traces(tmp_path):
    pytest.importorskip("pytest_html")
    xml, html, saved = tmp_path / "junit.xml", tmp_path / "report.html", tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites/", "--device=all", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={xml}", f"--html={html}", "--self-contained-html", f"--edgehil-save={saved}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert xml.stat().st_size < MAX_JUNIT_BYTES, xml.stat().st_size
    results = load_results(saved)
    assert results.traces, "the run recorded no power trace to reference"
    edgehil_props, trace_refs = 0, set()
    for case in ET.parse(xml).getroot().iter("testcase"):
        for prop in case.iter("property"):
            name, value = prop.get("name") or "", prop.get("value") or ""
            if not name.startswith("edgehil"):
                continue
            parsed = json.loads(value)  # every edgehil property is JSON, not a Python repr
            edgehil_props += 1
            if name == "edgehil_trace":
                trace_refs.add(parsed["test"])
                assert "time_s" not in parsed
    assert edgehil_props >= len(results.records)
    assert trace_refs == {t["test"] for t in results.traces}
    page = html.read_text(encoding="utf-8")
    # pytest-html keeps the extras in its JSON blob: the value table and one PNG per trace.
    assert page.count("edgehil-values") >= len({r.test for r in results.records})
    assert len(re.findall(r"power trace ", page)) >= len(results.traces)
