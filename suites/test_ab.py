"""Same-session A/B: the pair's model against its baseline (`--edgehil-ab=DIR|git:REV`), interleaved on one
board in one session, so the board's session-to-session drift cancels in the paired rounds.

Each record is the candidate's per-inference samples (checked against the budget as the energy suite
does) plus both models' rounds; the gate compares the pairs at the end of the run (docs/gate.md).
Without --edgehil-ab these tests skip.
"""

from __future__ import annotations

import pytest


@pytest.mark.edgehil_metrics("inference_mj", "inference_mw", unbudgeted=True)
def test_ab_inference_energy(edgehil_ab_energy, edgehil_record, pytestconfig):
    ab = edgehil_ab_energy
    refused = next((m.inference_refused for m in ab.candidate + ab.baseline if m.inference_refused is not None), None)
    if refused is not None:
        pytest.skip(f"refused by the meter: {refused}")
    source = str(pytestconfig.getoption("--edgehil-ab"))
    for metric, scale, attribute in (("inference_mj", 1e3, "inference_j"), ("inference_mw", 1e3, "inference_power_w")):
        edgehil_record.check_paired(
            metric, [getattr(m, attribute) * scale for m in ab.candidate],
            [getattr(m, attribute) * scale for m in ab.baseline], baseline_sha256=ab.baseline_sha256, source=source)
