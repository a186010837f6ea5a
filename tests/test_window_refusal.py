"""The shape every refusal of the meter's windows shares (`point_sampling.first_window_over`): the first
window whose bound exceeds the limit is refused, named and placed at its own edges; the rest pass. The
expected figures are worked by hand from the arrays below."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.measure.point_sampling import first_window_over
from pytest_edgehil.measure.trace_windows import EdgeFit

EDGES_S = np.array([0.0, 1e-3, 2e-3, 3e-3])  # four edges: windows 0-1, 1-2, 2-3


def _fit() -> EdgeFit:
    n = EDGES_S.size
    nothing = np.zeros(n)
    return EdgeFit(device_s=EDGES_S, position_s=EDGES_S + 5e-6, cumulative_j=nothing, located=np.ones(n, bool),
                   usable=np.ones(n, bool), step_w=nothing, edge_u_j=nothing, clock_ratio=1.0, clock_ratio_u=0.0,
                   offset_s=5e-6, residual_s=0.0, noise_w=0.0, sample_interval_s=10e-6,
                   stepped=np.ones(n, bool), centroid_s=EDGES_S + 5e-6, settle_tau_s=np.full(n, np.nan))


def test_the_first_window_over_the_limit_is_refused_at_its_own_edges_with_its_own_figure():
    idx = np.array([[0, 1], [1, 2], [2, 3]])
    seen: list[tuple[float, int]] = []

    def reason(rel: float, refused: int) -> str:
        seen.append((rel, refused))
        return f"off by up to {rel:.1%} ({refused} of 3 windows are refused)"

    # bounds 0.5 %, 5 % and 20 % of 2 mJ each: windows 1 and 2 are over 1 %, window 1 comes first.
    refusal = first_window_over(_fit(), idx, np.array([1e-5, 1e-4, 4e-4]), np.full(3, 2e-3), ["w0", "w1", "w2"],
                                0.01, reason, "do this")
    assert isinstance(refusal, CannotResolve)
    assert len(seen) == 1 and seen[0][0] == pytest.approx(0.05) and seen[0][1] == 2
    assert refusal.window == "w1" and refusal.interval_s == (1e-3 + 5e-6, 2e-3 + 5e-6)
    assert refusal.sample_interval_s == 10e-6
    assert "off by up to 5.0% (2 of 3 windows are refused)" in str(refusal) and "do this" in str(refusal)


def test_no_window_over_the_limit_is_no_refusal():
    idx = np.array([[0, 1], [1, 2], [2, 3]])
    assert first_window_over(_fit(), idx, np.full(3, 2e-5), np.full(3, 2e-3), ["w0", "w1", "w2"], 0.01,
                             lambda rel, refused: "never", "never") is None
