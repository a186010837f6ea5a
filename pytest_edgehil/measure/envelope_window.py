"""End to end over the RUN's envelope where the device's stamps cannot place the windows inside it.

A RUN's end-to-end windows tile it back to back: each inference's retrieval ends where the next one's
readout starts. Where the trace shows no power step there (the IMX500's retrieval and readout draw within
4 % of each other), those inner edges sit where the device's stamps put them, each floored to its timer's
tick, and a coarse timer (100 µs against Q-Segment's 17 ms inference period at 0.26 W: up to 1.2 % per
window) refuses every window (`uncertainty_refusal`). Yet the RUN's first step out of idle and its last step
back are located in the trace itself: the windows' sum is the energy between those two, whatever the stamps
say about the edges in between (a misplaced inner edge moves energy from one window to the next and none
out of the RUN). So the end-to-end figure is that envelope window's energy divided by the RUN's inference
count, as MLPerf Tiny measures energy (one window over back-to-back inferences), with the envelope's own
uncertainty divided likewise; the per-inference windows stay refused.

Pure functions on arrays; seconds, joules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_edgehil.measure.device_edges import edge_index
from pytest_edgehil.measure.trace_windows import EdgeFit
from pytest_edgehil.measure.uncertainty_refusal import pricing_refusal, uncertainty_refusal
from pytest_edgehil.measure.window_energies import window_energies

# Device windows this close (s) are back to back (a retrieval's end is the next readout's start to round-off).
_CONTIGUOUS_S = 1e-9
ENVELOPE_NAME = "RUN envelope window (end to end, back-to-back inferences)"


@dataclass(frozen=True)
class EnvelopeEnergy:
    """The end-to-end energy per inference from the RUN's envelope (J, 1-σ J), the mean device time of one
    inference's end-to-end window (s), and how many inferences it holds."""

    energy_j: float
    u_j: float
    window_s: float
    count: int

    @property
    def note(self) -> str:
        return (f"end to end: one window over the RUN's {self.count} back-to-back inferences (its first step out "
                f"of idle to its last step back, both located in the trace) / {self.count}; the device's stamps "
                "cannot place the windows inside it")


def envelope_end_to_end(fit: EdgeFit, end_to_end_w: np.ndarray, fix: str) -> EnvelopeEnergy | None:
    """End to end from the RUN's envelope, or None where it cannot stand in for the per-inference windows.

    `end_to_end_w`: the device's end-to-end windows (n × 2, device seconds). None unless the windows are back
    to back, both envelope edges are located (then no clock places them: a map whose ratio the few located
    edges cannot pin does not matter to their sum; the RUN's envelope has checked that clock already,
    `run_envelope`), and the envelope window itself passes the placement and pricing checks. Raises
    CannotResolve (`window_energies`, with `fix`) where the envelope window cannot be priced.
    """
    n = end_to_end_w.shape[0]
    if n == 0:
        return None
    if np.any(np.abs(end_to_end_w[1:, 0] - end_to_end_w[:-1, 1]) > _CONTIGUOUS_S):
        return None  # gaps between inferences lie in the envelope but in no window
    envelope_w = np.array([[end_to_end_w[0, 0], end_to_end_w[-1, 1]]])
    first, last = edge_index(fit.device_s, envelope_w)[0]
    if not (fit.located[first] and fit.located[last]):
        return None
    energy_j, u_j, _ = window_energies(fit, envelope_w, [ENVELOPE_NAME], fix)
    if (uncertainty_refusal(fit, envelope_w, energy_j, [ENVELOPE_NAME])
            or pricing_refusal(fit, envelope_w, energy_j, [ENVELOPE_NAME])) is not None:
        return None
    return EnvelopeEnergy(float(energy_j[0]) / n, float(u_j[0]) / n,
                          float(envelope_w[0, 1] - envelope_w[0, 0]) / n, n)
