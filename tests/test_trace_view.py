"""Power traces people can read: min/max decimation keeps every dip at its depth, every pair with an
energy figure keeps a trace with its stages, a full-resolution inference and a caption."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.results.decimate import peak_decimate
from pytest_edgehil.results.store import load_results

from .conftest import REPO


def test_peak_decimation_keeps_extremes_in_time_order():
    rng = np.random.default_rng(0)
    t = np.arange(100_001) * 2e-6
    p = 0.26 + 0.002 * rng.standard_normal(t.size)
    dips = [(k * 0.018 + 0.001, k * 0.018 + 0.001 + 0.23e-3) for k in range(11)]  # 0.23 ms at 70 mW
    for a, b in dips:
        p[(t >= a) & (t < b)] = 0.070
    td, pd = peak_decimate(t, p, 600)
    assert len(td) <= 600 and np.all(np.diff(td) > 0)
    assert pd.min() == p.min() and pd.max() == p.max() and td[pd.argmax()] == t[p.argmax()]
    for a, b in dips:  # every dip reaches its depth on the decimated trace (averaging gave 145-190 mW)
        inside = (td >= a) & (td < b)
        assert inside.any() and pd[inside].min() == pytest.approx(0.070, rel=0.05)
    same_t, same_p = peak_decimate(t[:500], p[:500], 600)
    assert np.array_equal(same_t, t[:500]) and np.array_equal(same_p, p[:500])
    with pytest.raises(ValueError, match="one length"):
        peak_decimate(t, p[:-1], 600)


def test_a_dip_next_to_idle_keeps_its_level_when_buckets_break_at_its_edges():
    """The last inference of a run is followed by idle power, lower than the dip: in a bucket shared with
    idle, only idle's minimum would survive; breaking buckets at the window edges keeps the dip's."""
    t = np.arange(100_001) * 2e-6
    p = np.full(t.size, 0.26)
    windows = [(k * 0.017 + 0.0101, k * 0.017 + 0.0101 + 0.23e-3) for k in range(10)]
    for a, b in windows:
        p[(t >= a) & (t < b)] = 0.070
    p[t >= windows[-1][1] + 0.3e-3] = 0.012  # idle right after the last retrieval
    plain_t, plain_p = peak_decimate(t, p, 600)
    a, b = windows[-1]
    plain = plain_p[(plain_t >= a) & (plain_t < b)]
    assert plain.size == 0 or plain.min() > 0.070  # the failure this guards against: the dip is lost
    td, pd = peak_decimate(t, p, 600, breaks_s=np.array(windows))
    assert len(td) <= 600 and np.all(np.diff(td) > 0) and pd.min() == p.min() and pd.max() == p.max()
    for a, b in windows:
        inside = (td >= a) & (td < b)
        assert inside.any() and pd[inside].min() == 0.070


def test_every_energy_pair_keeps_a_readable_trace(edgehil_project):
    edgehil_project.makepyfile(test_energy=(REPO / "suites" / "test_energy.py").read_text())
    out = edgehil_project.path / "r.json"
    result = edgehil_project.runpytest("--device=imx500,coral", "--model=qsegment", f"--edgehil-save={out}",
                                       "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    results = load_results(out)
    energy_pairs = {r.pair for r in results.records if r.metric.endswith(("_mj", "_mw"))}
    assert energy_pairs == {t["pair"] for t in results.traces} and len(energy_pairs) == 2
    power = {r.pair: r.value for r in results.records if r.metric == "inference_mw"}
    assert "qsegment-imx500" in power
    for trace in results.traces:
        assert set(trace["stages_s"]) == {"readout", "inference", "retrieval"}
        assert "analyzer " in trace["caption"] and "sample interval" in trace["caption"] and "95 % CI" in trace["caption"]
        if trace["pair"] not in power:
            continue
        level = power[trace["pair"]] / 1e3
        t, p = np.array(trace["time_s"]), np.array(trace["power_w"])
        for a, b in trace["windows_s"]:  # each inference dip reaches the table's inference power
            inside = (t >= a) & (t <= b)
            assert inside.any() and p[inside].min() <= 1.05 * level
        zt, zp = np.array(trace["zoom_time_s"]), np.array(trace["zoom_power_w"])
        a, b = trace["windows_s"][len(trace["windows_s"]) // 2]
        zoomed = zp[(zt > a) & (zt < b)]  # the zoomed inference sits at the table's inference power
        assert zoomed.size >= 8 and float(np.median(zoomed)) == pytest.approx(level, rel=0.05)
