"""Point-sampled traces: which per-inference windows their samples can price to 1 %, and the refusal.

A point-sampling digitizer (each sample one instant, no front end averaging it) cannot tell where within
a sample a power step fell, so each window edge is priced to about one sample of its step. `locate_edges`
detects such a trace (`EdgeFit.point_sampled`); this module turns the worst case into a typed refusal
for windows too short to carry it, instead of a silent number (issue 10). Pure functions on arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.measure.device_edges import edge_index
from pytest_edgehil.measure.trace_windows import EdgeFit

# A point-sampled window is priced to this relative error or refused (issue 10: no silent error over 1 %).
POINT_ERROR_REL = 0.01
# Point sampling reads each straddling sample at one instant: the cell's energy is off by up to one
# sample interval of the step at each edge (the edge's place within the cell is unknown to a sample),
# so a window of n samples at level P with steps ΔP0, ΔP1 errs by up to (|ΔP0| + |ΔP1|)·dt / (P·n·dt).
# An edge placed exactly errs by at most half a sample of its step (the straddling sample reads one level
# for the whole cell); the other half covers the map's own placement error (a point-sampled trace cannot
# locate edges, they sit where the device clock puts them). Measured on the IMX500 (truth matrix, worst of
# 60, 11-430 samples): error × n ≈ 1.0-1.2 while (|ΔP0| + |ΔP1|)/P ≈ 5.7, so the worst seen is about a fifth
# of this bound: a refusal here is conservative, never a silent number over 1 %.
_POINT_EDGE_SAMPLES = 1.0
POINT_FIX = ("use an integrating digitizer or its averaging mode (each sample the mean over its interval), "
             "a finer sample interval, or measure the stage's energy with a stage-only loop (many "
             "back-to-back inferences in one window, as MLPerf Tiny does) so the edges matter once per run")


def windows_over(bound_j: np.ndarray, energy_j: np.ndarray, max_rel: float) -> tuple[np.ndarray, np.ndarray]:
    """(each window's bound over its |energy|, the indices of those over `max_rel`): what every refusal of
    the meter's windows tests (a window with no bound is 0; one with no energy but a bound is over)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(bound_j > 0, bound_j / np.abs(energy_j), 0.0)
    return rel, np.flatnonzero(~(rel <= max_rel))


def first_window_over(fit: EdgeFit, idx: np.ndarray, bound_j: np.ndarray, energy_j: np.ndarray,
                      names: Sequence[str], max_rel: float, reason: Callable[[float, int], str],
                      fix: str) -> CannotResolve | None:
    """The refusal of the first window whose bound (`bound_j`, J, one per window) exceeds `max_rel` of its
    |energy| (`windows_over`), else None: named, placed at its edges (`idx`: the window's start and end
    edge indices into `fit`) and with `fit`'s sample interval; its text is `reason(that window's bound over
    its energy, how many windows are refused)`, its remedy `fix`."""
    rel, bad = windows_over(bound_j, energy_j, max_rel)
    if bad.size == 0:
        return None
    w = int(bad[0])
    i0, i1 = idx[w]
    return CannotResolve(names[w], (float(fit.position_s[i0]), float(fit.position_s[i1])), fit.sample_interval_s,
                         reason(float(rel[w]), int(bad.size)), fix)


def point_sampling_refusal(fit: EdgeFit, windows_dev_s: np.ndarray, energy_j: np.ndarray, names: Sequence[str],
                           max_error_rel: float = POINT_ERROR_REL) -> CannotResolve | None:
    """The refusal for the first window a point-sampled trace cannot price to `max_error_rel`, else None.

    None for an integrating trace (`fit.point_sampled` False): its edges are energy-exact. For a point-
    sampled one each window's worst-case error is (|step at start| + |step at end|)·dt·_POINT_EDGE_SAMPLES
    over its energy; that is, it needs n ≥ (|ΔP0| + |ΔP1|) / (P·max_error_rel) samples.
    """
    if not fit.point_sampled or len(names) == 0:
        return None
    idx = edge_index(fit.device_s, windows_dev_s)
    i0, i1 = idx[:, 0], idx[:, 1]
    dt = fit.sample_interval_s
    edge_j = (np.abs(fit.step_w[i0]) + np.abs(fit.step_w[i1])) * dt * _POINT_EDGE_SAMPLES
    bound_rel, bad = windows_over(edge_j, energy_j, max_error_rel)
    if bad.size == 0:
        return None
    w = int(bad[0])
    length_s = float(fit.position_s[i1[w]] - fit.position_s[i0[w]])
    have = length_s / dt
    need = have * float(bound_rel[w]) / max_error_rel
    return CannotResolve(
        names[w], (float(fit.position_s[i0[w]]), float(fit.position_s[i1[w]])), dt,
        f"the trace is point-sampled (sampling model: each sample one instant, not the mean over its "
        f"interval; its power steps fall on sample boundaries), so each edge is priced to one sample of its "
        f"step: up to {bound_rel[w]:.1%} of this window, over the {max_error_rel:.0%} allowed; it holds "
        f"{have:.0f} samples and needs ≥ {np.ceil(need):.0f} at these steps ({bad.size} of {len(names)} "
        "windows are refused)", POINT_FIX)


# A run whose sampling model cannot be told is returned only where even point sampling keeps it within the
# truth rule (issue 10: ≤ 0.5 % or a typed refusal).
UNCLASSIFIED_ERROR_REL = 0.005
UNCLASSIFIED_FIX = ("if the run is short, run more inferences per acquisition window (EnergyPlan.runs_per_window, "
                    "ini edgehil_energy_runs: 5 or more give 12 power steps when the edges show); if it is not, the "
                    "edges do not show where the device's timings put them: check the device's clock (an internal "
                    "RC oscillator beyond 0.5 %) and timer resolution, or use a finer sample interval")


def unclassified_refusal(fit: EdgeFit, windows_dev_s: np.ndarray, energy_j: np.ndarray, names: Sequence[str],
                         max_error_rel: float = UNCLASSIFIED_ERROR_REL) -> CannotResolve | None:
    """The refusal for the first window of a too-short run that point sampling could push past
    `max_error_rel`, else None (None too when the sampling model is known: `fit.sampling_known`).

    With fewer than 12 located power steps the meter cannot tell an integrating digitizer (edges energy-exact)
    from a point-sampling one, whose every edge may be priced up to one sample of the power beside it off:
    a centroid on a cell boundary is up to half a sample from the true edge, at the level on either side,
    and the straddling sample is read at one instant. So each window's worst case is (L0 + L1)·dt / |E|, with
    L the largest |power| within a sample of a located edge (`EdgeFit.edge_level_w`) and the |step| at an
    edge placed by the clock map (priced step-aware, as `point_sampling_refusal` bounds it).
    Runs of ≤ 3 inferences (≤ 10 distinct edges) always land here.
    """
    if fit.sampling_known or len(names) == 0 or fit.edge_level_w is None:
        return None
    idx = edge_index(fit.device_s, windows_dev_s)
    # A located edge is priced from its centroid (off by up to a sample of the level beside it); one placed
    # by the map is priced step-aware (off by up to a sample of its step, nothing where there is no step).
    per_edge_w = np.where(fit.located, fit.edge_level_w, np.abs(fit.step_w))
    edge_j = (per_edge_w[idx[:, 0]] + per_edge_w[idx[:, 1]]) * fit.sample_interval_s
    return first_window_over(fit, idx, edge_j, energy_j, names, max_error_rel, lambda rel, refused: (
        f"the run has only {fit.located_steps} located power steps of its {fit.device_s.size} stage edges, too "
        f"few (< 12) to tell whether the "
        f"analyzer integrates each sample or point-samples it; if it point-samples, each edge may be priced up "
        f"to one sample of the power beside it off: up to {rel:.2%} of this window, over the "
        f"{max_error_rel:.1%} allowed ({refused} of {len(names)} windows are refused)"), UNCLASSIFIED_FIX)
