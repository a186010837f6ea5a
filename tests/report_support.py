"""Builders and readers for the report tests (test_report*.py, test_history_store.py, test_vocabulary.py):
records, nights and traces of a made-up series, and a parser of the page's structure and images."""


from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from pytest_edgehil.config.budgets import Limit, unit_of
from pytest_edgehil.measure.metrics import summarize
from pytest_edgehil.results.records import MetricRecord
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
        self.blocks: list[dict] = []  # {"pair", "metric", "family", "device", "class", "text", "origin"}
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
                           "device": self._device, "class": attr.get("class", "").split(), "text": "",
                           "origin": attr.get("data-origin", "")}
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


def read_trace(trace: dict):
    from pytest_edgehil.results.report import Trace

    return Trace(pair=trace["pair"], time_s=trace["time_s"], power_w=trace["power_w"],
                 windows_s=[tuple(w) for w in trace["windows_s"]], backend=trace["backend"])
