"""The nightly HTML report: structure, self-containment, colours against budgets, trends, the command,
and (where Chromium is installed) that a browser renders it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_edgehil.cli import EXIT_ERROR, main
from pytest_edgehil.results.report import (
    build_report_html,
    read_results,
    trace_plot,
    trend_plot,
    write_report,
)
from pytest_edgehil.results.report_runs import utc_label

from .report_support import (
    FAIL_CELL_RGB,
    PAIRS,
    TYPICAL,
    WINDOW_SHADE_RGB,
    make_night,
    make_record,
    make_trace,
    parse,
    pixels_near,
    png_of,
    read_trace,
    save,
    write_nights,
)


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


def test_trends_need_two_runs_and_leave_out_other_backends(tmp_path: Path) -> None:
    one = parse(build_report_html([read_results(p) for p in write_nights(tmp_path, [make_night(0)])]))
    assert not [img for img in one.images if img["figure"] == "trend-plot"]

    mixed = write_nights(tmp_path, [make_night(0, backend="HW"), make_night(1), make_night(2)])
    page = build_report_html([read_results(p) for p in mixed])
    assert "Left out, another backend than the pair's latest:" in page
    assert all(f"{pair} on HW (2025-05-10 02:00 UTC)" in page for pair in PAIRS)
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


@pytest.mark.parametrize("history", ["off", "store"])
def test_a_directory_of_several_runs_of_one_pair_is_refused_not_merged(tmp_path: Path, history: str,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # The default results folder (`edgehil-results/`: one file per run, latest.json a copy of the newest)
    # given as a directory was read as one night: the table showed the OLDEST run's figures under the
    # newest's date, every run's traces beside them. Copies of one run count once; two runs of a pair refuse.
    folder = tmp_path / "edgehil-results"
    older, newer = make_night(0), make_night(1, drift=1.5)
    save(folder / "20250510T020000Z-1-aaaa.json", older)
    shutil.copy(save(folder / "20250511T020000Z-2-bbbb.json", newer), folder / "latest.json")
    store = ["--history", "off"] if history == "off" else ["--history", str(tmp_path / "h.sqlite")]
    out = tmp_path / "out.html"
    assert main(["report", str(folder), "--html", str(out), *store]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("edgehil report: error:") and str(folder) in err and len(err.strip().splitlines()) == 1
    assert "20250510T020000Z-1-aaaa.json" in err and "20250511T020000Z-2-bbbb.json" in err
    assert not out.exists()
    (folder / "20250510T020000Z-1-aaaa.json").unlink()  # one run and its copy: one run, its records once
    assert main(["report", str(folder), "--html", str(out), *store]) == 0
    assert "1 run(s)" in capsys.readouterr().out
    cells = parse(out.read_text(encoding="utf-8")).table()
    assert len(cells) == len(newer.records)


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
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report.html")] == []


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


def test_a_read_only_report_directory_is_one_line_naming_the_page(series: list[Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # On a read-only file system (a CI artifact folder mounted ro) removing the temporary page fails too,
    # with the same EROFS: that cleanup must not replace the error that says which file and what to do.
    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    out = tmp_path / "ro" / "report.html"
    out.parent.mkdir()
    monkeypatch.setattr(os, "replace", read_only)
    monkeypatch.setattr(os, "unlink", read_only)
    assert main(["report", *map(str, series), "--html", str(out), "--history", "off"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("edgehil report: error:") and str(out) in err and "writable" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


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


def test_run_labels_are_utc_and_say_so() -> None:
    # A run stamped in another zone (a lab machine not on UTC) is shown on the same clock as the others.
    started = datetime(2025, 5, 10, 4, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc_label(started, "run.json") == "2025-05-10 02:00 UTC"
    assert utc_label(started, "run.json", seconds=True) == "2025-05-10 02:00:00 UTC"
    assert utc_label(None, "run.json") == "run.json"
