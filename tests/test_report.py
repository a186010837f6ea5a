"""The nightly HTML report: structure, self-containment, colours against budgets, trends, the command,
and (where Chromium is installed) that a browser renders it."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_edgehil.cli import EXIT_ERROR, main
from pytest_edgehil.config.budgets import Limit, unit_of
from pytest_edgehil.measure.metrics import summarize
from pytest_edgehil.results.records import MetricRecord
from pytest_edgehil.results.report import (
    build_report_html,
    read_results,
    trace_plot,
    trend_plot,
    write_report,
)
from pytest_edgehil.results.store import ResultRecord, ResultsFile, ResultsWriter, RunInfo

LIMITS = {
    "inference_ms": Limit("inference_ms", max=0.237, published=0.23, source="Q-Segment paper"),
    "inference_mw": Limit("inference_mw", max=72.0),
    "end_to_end_mw": Limit("end_to_end_mw", min=240.0, max=270.0),
    "roc_auc": Limit("roc_auc", min=0.95),
}
TYPICAL = {"inference_ms": 0.167, "inference_mw": 68.5, "inference_mj": 0.0114, "end_to_end_mw": 263.0,
           "roc_auc": 0.975}
PAIRS = {"qsegment-imx500": ("qsegment", "imx500", "imx500"), "qsegment-imx500-b": ("qsegment", "imx500-b", "imx500")}
WINDOW_SHADE_RGB = np.array([248, 212, 162])  # #f0a030 at alpha 0.45 over white, as trace_plot draws it
FAIL_CELL_RGB = np.array([249, 211, 207])  # the .fail background in the page's CSS


def make_record(pair: str, metric: str, value_or_samples, backend: str = "SIMULATED") -> ResultRecord:
    """A record as Recorder.check builds it (real budget check, real median and bootstrap CI), as saved."""
    model, device, kind = PAIRS[pair]
    if isinstance(value_or_samples, np.ndarray):
        summary = summarize(value_or_samples)
        value, ci, raw = summary.median, (summary.ci_low, summary.ci_high), value_or_samples.tolist()
    else:
        value, ci, raw = float(value_or_samples), None, None
    limit = LIMITS.get(metric)
    verdict = limit.check(value) if limit else None
    record = MetricRecord(
        pair=pair, model=model, device=device, kind=kind, metric=metric, value=value, unit=unit_of(metric),
        backend=backend, status=verdict.status.value if verdict else "info",
        bound=limit.bound_text if limit else "", margin_rel=verdict.margin_rel if verdict else None,
        samples=len(raw) if raw else 200, source=limit.source if limit else "",
        ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None, raw=raw,
        context={"model_sha256": "ab" * 32, "device_firmware": f"{device}-twin 1.0.0"},
        published=limit.published if limit else None, limit_min=limit.min if limit else None,
        limit_max=limit.max if limit else None, marginal_rel=limit.marginal_rel if limit else None)
    outcome = "failed" if record.status == "fail" else "passed"
    return ResultRecord.from_metric_record(record, test=f"suites/test_x.py::test_{metric}[{pair}]", outcome=outcome)


def make_trace(pair: str, windows: int = 8, backend: str = "SIMULATED") -> dict:
    """Idle at 260 mW with a dip to 70 mW in each 0.17 ms inference window every 18.5 ms, 600 points."""
    time_s = np.linspace(-0.02, 0.16, 600)
    starts = np.arange(windows) * 0.0185
    windows_s = np.stack([starts, starts + 0.00017], axis=1)
    power_w = np.full_like(time_s, 0.26)
    for t0, t1 in windows_s:
        power_w[(time_s >= t0) & (time_s <= t1 + 0.0003)] = 0.07
    return {"pair": pair, "test": f"suites/test_energy.py::test_inference_energy[{pair}]", "time_s": time_s.tolist(),
            "power_w": power_w.tolist(), "windows_s": windows_s.tolist(), "backend": backend}


def make_night(night: int, *, drift: float = 1.0, backend: str = "SIMULATED", seed: int = 0,
               pairs: tuple[str, ...] = tuple(PAIRS)) -> ResultsFile:
    rng = np.random.default_rng(seed * 100 + night)
    records = []
    for pair in pairs:
        for metric, typical in TYPICAL.items():
            if metric == "roc_auc":
                records.append(make_record(pair, metric, typical + rng.normal(0, 0.002), backend))
            else:
                samples = typical * drift * rng.lognormal(0.0, 0.02, size=30)
                records.append(make_record(pair, metric, samples, backend))
    started = datetime(2025, 5, 10, 2, 0, tzinfo=timezone.utc) + timedelta(days=night)
    run = RunInfo(started_at=started.isoformat(timespec="seconds"), backend=backend,
                  git_commit=f"c0ffee{night:02d}", devices=sorted({PAIRS[p][1] for p in pairs}))
    return ResultsFile(run=run, records=records, traces=[make_trace(pair, backend=backend) for pair in pairs])


def save(path: Path, night: ResultsFile, *, finish: bool = True) -> Path:
    """Write a results file the way `--edgehil-save` does: the real writer, record by record."""
    writer = ResultsWriter(path, night.run)
    for record in night.records:
        writer.add([record])
    writer.add(traces=night.traces)
    if finish:
        writer.finish(0)
    return path


def write_nights(tmp_path: Path, nights: list[ResultsFile]) -> list[Path]:
    return [save(tmp_path / f"nightly-{i}.json", night) for i, night in enumerate(nights)]


class PageParser(HTMLParser):
    """Collects what the tests check: tags seen, images, any URL attributes, and the results table's metric
    blocks (`div.m` with `data-metric`) by pair row, with the family column and device group each is in."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.images: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.blocks: list[dict] = []  # {"pair", "metric", "family", "device", "class", "text"}
        self.family_heads: list[str] = []  # the table's column headers, text included (units)
        self._device = self._pair = self._family = ""
        self._block: dict | None = None
        self._block_depth = 0
        self._head: list[str] | None = None
        self._figure_class = ""

    def handle_starttag(self, tag, attrs):
        attr = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag not in ("img", "meta", "br", "link"):
            self.stack.append(tag)
        self.urls += [v for k, v in attr.items() if k in ("src", "href", "action", "srcset")]
        if tag == "figure":
            self._figure_class = attr.get("class", "")
        if tag == "img":
            self.images.append({"src": attr.get("src", ""), "figure": self._figure_class, "kind": "png"})
        if tag == "svg":  # the trend plots: inline SVG markup
            self.images.append({"src": "", "figure": self._figure_class, "kind": "svg",
                                "width": attr.get("width", "0"), "height": attr.get("height", "0")})
        if tag == "tbody":
            self._device = attr.get("data-device", "")
        if tag == "tr":
            self._pair = attr.get("data-pair", "")
        if tag == "td":
            self._family = attr.get("data-family", "")
        if tag == "th" and "family-head" in attr.get("class", "").split():
            self._head = []
        if tag == "div" and self._block is not None:
            self._block_depth += 1
        elif tag == "div" and "data-metric" in attr and self._pair:
            self._block = {"pair": self._pair, "metric": attr["data-metric"], "family": self._family,
                           "device": self._device, "class": attr.get("class", "").split(), "text": ""}
            self._block_depth = 1

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        if tag == "div" and self._block is not None:
            self._block_depth -= 1
            if self._block_depth == 0:
                self.blocks.append(self._block)
                self._block = None
            else:
                self._block["text"] += " "
        if tag == "th" and self._head is not None:
            self.family_heads.append("".join(self._head))
            self._head = None

    def handle_data(self, data):
        if self._block is not None:
            self._block["text"] += data
        if self._head is not None:
            self._head.append(data)

    def table(self) -> dict[tuple[str, str], dict]:
        """(pair, metric) -> the metric's block, for the metrics a pair has (not the "—" placeholders)."""
        return {(b["pair"], b["metric"]): b for b in self.blocks if "absent" not in b["class"]}

    def families(self) -> dict[str, str]:
        """metric -> the family column it is shown in."""
        return {b["metric"]: b["family"] for b in self.blocks if "absent" not in b["class"]}


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


def png_of(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).convert("RGB")


def pixels_near(image: Image.Image, rgb: np.ndarray, tolerance: int = 3) -> int:
    return int(np.all(np.abs(np.asarray(image, dtype=int) - rgb) <= tolerance, axis=-1).sum())


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    return write_nights(tmp_path, [make_night(i) for i in range(4)])


def test_page_has_the_table_one_image_per_trace_and_a_trend_per_metric(series: list[Path]) -> None:
    page = build_report_html([read_results(p) for p in series])
    parsed = parse(page)
    assert parsed.tags[0] == "html" and "title" in parsed.tags
    cells = parsed.table()
    assert {pair for pair, _ in cells} == set(PAIRS)
    assert {metric for _, metric in cells} == set(TYPICAL)
    trace_imgs = [img for img in parsed.images if img["figure"] == "trace-plot"]
    trend_imgs = [img for img in parsed.images if img["figure"] == "trend-plot"]
    assert len(trace_imgs) == len(PAIRS)
    assert len(trend_imgs) == len(TYPICAL)
    assert len(parsed.images) == len(trace_imgs) + len(trend_imgs)
    assert {img["kind"] for img in trace_imgs} == {"png"} and {img["kind"] for img in trend_imgs} == {"svg"}
    for img in parsed.images:
        width, height = png_of(img["src"]).size if img["kind"] == "png" else (float(img["width"]), float(img["height"]))
        assert width > 200 and height > 100


def test_page_is_self_contained(series: list[Path]) -> None:
    page = build_report_html([read_results(p) for p in series])
    parsed = parse(page)
    assert parsed.urls, "the page has images, so it has src attributes to check"
    assert all(url.startswith("data:") for url in parsed.urls), [u[:40] for u in parsed.urls if "data:" not in u]
    assert "http://" not in page and "https://" not in page
    assert "script" not in parsed.tags and "link" not in parsed.tags


def test_cells_are_coloured_by_verdict_and_show_value_budget_margin_ci(tmp_path: Path) -> None:
    night = make_night(0)
    over = 0.237 * 1.1  # inference_ms 10 % over its budget on one pair only
    night.records = [make_record(r.pair, r.metric, over * np.ones(30))
                     if (r.pair, r.metric) == ("qsegment-imx500-b", "inference_ms") else r for r in night.records]
    (path,) = write_nights(tmp_path, [night])
    cells = parse(build_report_html([read_results(path)])).table()

    failed = cells[("qsegment-imx500-b", "inference_ms")]
    assert "fail" in failed["class"]
    assert f"{over:.4g} ms" in failed["text"] and "≤ 0.237 ms" in failed["text"] and "-10.0%" in failed["text"]
    passed = cells[("qsegment-imx500", "inference_ms")]
    assert "pass" in passed["class"] and "fail" not in passed["class"] and "95 % CI" in passed["text"]
    assert "info" in cells[("qsegment-imx500", "inference_mj")]["class"]  # no budget for it
    fail_cells = [key for key, cell in cells.items() if "fail" in cell["class"]]
    assert fail_cells == [("qsegment-imx500-b", "inference_ms")]


def test_newest_run_fills_the_table_whatever_the_argument_order(tmp_path: Path) -> None:
    nights = [make_night(i, drift=1.0 + 0.2 * i) for i in range(3)]
    paths = write_nights(tmp_path, nights)
    newest_value = next(r.value for r in nights[2].records
                        if (r.pair, r.metric) == ("qsegment-imx500", "inference_mw"))
    for order in (paths, paths[::-1]):
        page = build_report_html([read_results(p) for p in order])
        cell = parse(page).table()[("qsegment-imx500", "inference_mw")]
        assert f"{newest_value:.4g} mW" in cell["text"]
        assert "c0ffee02" in page and "2025-05-12 02:00" in page


def test_inference_windows_are_shaded_on_the_trace_plot() -> None:
    marked = png_of(trace_plot(read_trace(make_trace("qsegment-imx500"))))
    bare = png_of(trace_plot(read_trace(make_trace("qsegment-imx500", windows=0))))
    assert pixels_near(marked, WINDOW_SHADE_RGB) > 200
    assert pixels_near(bare, WINDOW_SHADE_RGB) == 0


def test_trend_rings_the_over_budget_night_only(tmp_path: Path) -> None:
    nights = [make_night(i) for i in range(3)]
    clean = [read_results(p) for p in write_nights(tmp_path, nights)]
    nights[2].records = [make_record(r.pair, r.metric, 300.0) if r.metric == "end_to_end_mw" else r
                         for r in nights[2].records]  # over its 270 mW budget on the newest night
    (tmp_path / "failing").mkdir()
    failing = [read_results(p) for p in write_nights(tmp_path / "failing", nights)]
    over = [r for r in failing[-1].records if r.metric == "end_to_end_mw" and r.status == "fail"]
    assert over, "the newest night is over budget"
    rings = trend_plot("end_to_end_mw", "mW", failing).count('class="over-budget"')
    assert rings == len({r.pair for r in over})  # one ring per over-budget pair, on its newest point only
    assert 'class="over-budget"' not in trend_plot("end_to_end_mw", "mW", clean)


def read_trace(trace: dict):
    from pytest_edgehil.results.report import Trace

    return Trace(pair=trace["pair"], time_s=trace["time_s"], power_w=trace["power_w"],
                 windows_s=[tuple(w) for w in trace["windows_s"]], backend=trace["backend"])


def test_trends_need_two_runs_and_leave_out_other_backends(tmp_path: Path) -> None:
    one = parse(build_report_html([read_results(p) for p in write_nights(tmp_path, [make_night(0)])]))
    assert not [img for img in one.images if img["figure"] == "trend-plot"]

    mixed = write_nights(tmp_path, [make_night(0, backend="HW"), make_night(1), make_night(2)])
    page = build_report_html([read_results(p) for p in mixed])
    assert "Left out, another backend than the pair's latest:" in page
    assert all(f"{pair} on HW (2025-05-10 02:00)" in page for pair in PAIRS)
    assert len([img for img in parse(page).images if img["figure"] == "trend-plot"]) == len(TYPICAL)


def test_a_directory_of_device_files_is_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CI matrix writes one file per device job; the night's directory makes one run of every pair."""
    nights = []
    for night in range(3):
        folder = tmp_path / f"2025-05-{10 + night}"
        folder.mkdir()
        for pair in PAIRS:
            save(folder / f"{PAIRS[pair][1]}.json", make_night(night, pairs=(pair,)))
        nights.append(folder)
    out = tmp_path / "nightly.html"
    assert main(["report", *map(str, nights), "--html", str(out)]) == 0
    assert "3 run(s)" in capsys.readouterr().out
    parsed = parse(out.read_text(encoding="utf-8"))
    assert {pair for pair, _ in parsed.table()} == set(PAIRS)
    assert len([img for img in parsed.images if img["figure"] == "trace-plot"]) == len(PAIRS)
    assert len([img for img in parsed.images if img["figure"] == "trend-plot"]) == len(TYPICAL)


def test_reader_ignores_fields_a_newer_writer_adds(tmp_path: Path) -> None:
    night = make_night(0)
    (path,) = write_nights(tmp_path, [night])
    data = json.loads(path.read_text())
    data["records"][0]["p_value"] = 0.01
    data["traces"][0]["sample_interval_s"] = 5.12e-6
    path.write_text(json.dumps(data))
    run = read_results(path)
    assert len(run.records) == len(night.records) and run.git_commit == "c0ffee00" and len(run.traces) == 2


def test_command_writes_the_page(series: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["report", *map(str, series), "--html", str(out)]) == 0
    assert "4 run(s)" in capsys.readouterr().out
    assert len(parse(out.read_text(encoding="utf-8")).images) == len(PAIRS) + len(TYPICAL)
    assert not list(tmp_path.glob(".report.html.tmp*"))


RUN = {"format": "pytest-edgehil results", "run": {"started_at": "2025-05-10T02:00:00+00:00", "backend": "HW"}}


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    (json.dumps({**RUN, "schema_version": 99, "records": []}), "written by a newer pytest-edgehil"),
    (json.dumps({**RUN, "schema_version": 1, "records": [{"pair": "x"}]}), "missing metric, value, unit"),
    (json.dumps({**RUN, "schema_version": 1, "records": [], "traces": [{"pair": "x", "time_s": [0.0]}]}),
     "trace #1: missing power_w"),
])
def test_bad_results_file_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      content: str | None, message: str) -> None:
    path = tmp_path / "nightly.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path), "--html", str(tmp_path / "out.html")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("edgehil report: error:") and str(path) in err and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.html").exists()


def test_a_killed_run_is_reported_with_what_it_measured(tmp_path: Path) -> None:
    night = make_night(0)
    night.records = night.records[:3]
    path = save(tmp_path / "killed.json", night, finish=False)  # no finish(): what SIGKILL leaves behind
    page = build_report_html([read_results(path)])
    assert "did not finish" in page
    assert set(parse(page).table()) == {(r.pair, r.metric) for r in night.records}


def test_the_gate_section_fails_a_killed_newest_run_as_compare_does(tmp_path: Path) -> None:
    # `edgehil compare` fails an incomplete run ("input incomplete"); the report's gate section must say
    # the same, not "passed" under its "did not finish" banner (a fresh-user review).
    whole = save(tmp_path / "whole.json", make_night(0))
    night = make_night(1)
    night.records = night.records[:3]
    killed = save(tmp_path / "killed.json", night, finish=False)
    page = build_report_html([read_results(whole), read_results(killed)])
    gate = page[page.index('id="gate"') - 40:]
    assert 'class="gate failed"' in gate[:200]
    assert "did not finish (complete: false" in gate and "FAIL" in gate


def test_write_report_needs_a_results_file(tmp_path: Path) -> None:
    from pytest_edgehil.errors import ConfigError

    with pytest.raises(ConfigError, match="no results files given"):
        write_report([], tmp_path / "out.html")


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


def test_headless_chromium_renders_the_page(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no chromium is on PATH: .ci/run installs it; the browser check must run in CI")
        pytest.skip("no chromium on PATH to render the page headless (CI installs it and then this test runs)")
    night = make_night(1)
    night.records = [make_record(r.pair, r.metric, 300.0)  # over its 270 mW budget
                     if (r.pair, r.metric) == ("qsegment-imx500-b", "end_to_end_mw") else r for r in night.records]
    paths = write_nights(tmp_path, [make_night(0), night])
    html_path = tmp_path / "report.html"
    write_report(paths, html_path)
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--window-size=1280,1600", f"--screenshot={shot}", html_path.as_uri()],
                   check=True, capture_output=True, timeout=60, cwd=tmp_path)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1600)
    # The fail cell's CSS colour on screen proves the browser applied the inline style to the table: a
    # table cell covers several thousand pixels, the FAIL chip of the legend well under 2000.
    assert pixels_near(image, FAIL_CELL_RGB, tolerance=1) > 4000
    assert np.asarray(image).std() > 20  # not a blank page
