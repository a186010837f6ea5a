"""Fit the imx500 and coral twin profiles to the published figures, from the shipped models' MACs and
elementwise ops.

Run after rebuilding the reference models:  python scripts/calibrate_profiles.py
It rewrites the fitted keys in pytest_edgehil/sim/profiles.toml and prints what it fitted.

Published figures (TinyTracker and Q-Segment papers):
- IMX500: TinyTracker 17.9 ms readout + 0.86 ms inference + 0.24 ms retrieval = 19 ms, 4.9 mJ end to end
  of which 0.06 mJ inference; Q-Segment 0.23 ms inference, 17 ms end to end, 72 mW in inference and
  254 mW end to end.
- Coral Dev Board Micro: TinyTracker 34.4 ms and 34.2 mJ end to end.
The fit is on "MAC-equivalent work": MACs plus elementwise ops priced at the profile's
`elementwise_ops_per_s` (absent for these boards: one elementwise op costs one MAC, since no published
figure separates the two), so the twin's `inference_s` reproduces the published times.

Every figure is fitted exactly (no headroom: the budget states the published value and a tolerance sized
for session drift, fixtures/budgets.toml), except where two figures over-determine one parameter: the
IMX500's one inference power cannot give both TinyTracker's 0.06 mJ / 0.86 ms (69.8 mW) and Q-Segment's
72 mW; it is fitted to TinyTracker's (the budgeted energy), and Q-Segment's inference power comes out
3.1 % under its published 72 mW (a `max`: inside it). Readout follows the frame (sensor mode): each
IMX500 input frame gets the readout time and power that give its model's published end to end.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.sim.profile import PROFILES_FILE, load_profiles

TINY_FRAME, QSEG_FRAME = "96x96x1", "128x128x3"


def output_bytes(info) -> int:
    return sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in info.outputs)


def mac_equivalent(info, profile) -> float:
    """MACs plus elementwise ops expressed in MACs at the profile's rates (which the fit leaves unchanged
    when `elementwise_ops_per_s` is absent: the two are then priced alike)."""
    if profile.elementwise_ops_per_s is None:
        return float(info.macs + info.elementwise_ops)
    raise SystemExit(f"{profile.kind}: an explicit elementwise_ops_per_s would change with the fitted int8 rate; "
                     "extend this script to subtract elementwise_ops / elementwise_ops_per_s from the published "
                     "times before fitting")


def set_keys(text: str, kind: str, table: str, values: dict[str, float]) -> str:
    """Replace `key = value` lines inside [device.KIND] (or [device.KIND.power])."""
    header = f"[device.{kind}]" if table == "" else f"[device.{kind}.{table}]"
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end
    section = text[start:end]
    for key, value in values.items():
        section, n = re.subn(rf"(?m)^{re.escape(key)}\s*=\s*[^#\n]*?(\s*(#.*)?)$",
                             lambda m, v=value, k=key: f"{k} = {v:.6g}{m.group(1)}", section)
        if n != 1:
            raise SystemExit(f"{header}: key {key!r} not found exactly once")
    return text[:start] + section + text[end:]


def main(argv: list[str] | None = None) -> None:
    # Without arguments it rewrites a shipped file: `--help` (or a typo) must never get that far.
    argparse.ArgumentParser(description=__doc__.splitlines()[0] + " (rewrites pytest_edgehil/sim/profiles.toml)"
                            ).parse_args(argv)
    models = REPO / "fixtures" / "models"
    qseg = analyze_model((models / "qsegment.tflite").read_bytes(), name="qsegment")
    tiny = analyze_model((models / "tinytracker.tflite").read_bytes(), name="tinytracker")
    profiles = load_profiles()
    text = PROFILES_FILE.read_text(encoding="utf-8")

    # IMX500: two published inference times, two unknowns (throughput and fixed overhead).
    imx = profiles["imx500"]
    qseg_work, tiny_work = mac_equivalent(qseg, imx), mac_equivalent(tiny, imx)
    sec_per_mac = (0.86e-3 - 0.23e-3) / (tiny_work - qseg_work)
    overhead_s = 0.23e-3 - qseg_work * sec_per_mac
    if sec_per_mac <= 0 or overhead_s < 0:
        raise SystemExit(f"MAC-equivalent work qsegment={qseg_work:,.0f} tinytracker={tiny_work:,.0f}: tinytracker "
                         "needs >= 3.74x the work of qsegment to fit 0.23 ms / 0.86 ms with a non-negative overhead")
    retrieval_fixed_s = 0.24e-3 - output_bytes(tiny) / imx.retrieval_bytes_per_s
    qseg_retrieval_s = retrieval_fixed_s + output_bytes(qseg) / imx.retrieval_bytes_per_s
    qseg_readout_s = 17.0e-3 - 0.23e-3 - qseg_retrieval_s
    inference_w = 0.06e-3 / 0.86e-3
    other_w = (4.9e-3 - inference_w * 0.86e-3) / (17.9e-3 + 0.24e-3)  # readout and retrieval alike
    qseg_readout_w = (0.254 * 17.0e-3 - inference_w * 0.23e-3 - other_w * qseg_retrieval_s) / qseg_readout_s
    text = set_keys(text, "imx500", "", {"int8_macs_per_s": 1 / sec_per_mac, "inference_overhead_s": overhead_s,
                                         "retrieval_fixed_s": retrieval_fixed_s, "readout_s": 17.9e-3})
    text = set_keys(text, "imx500", "power", {"inference_w": inference_w, "readout_w": other_w,
                                              "retrieval_w": other_w})
    text = set_keys(text, "imx500", f'frame_readout."{TINY_FRAME}"', {"readout_s": 17.9e-3, "readout_w": other_w})
    text = set_keys(text, "imx500", f'frame_readout."{QSEG_FRAME}"', {"readout_s": qseg_readout_s,
                                                                       "readout_w": qseg_readout_w})

    # Coral Dev Board Micro: one published end-to-end time; readout and retrieval are the estimates.
    coral = profiles["coral"]
    inference_s = 34.4e-3 - coral.readout_s - coral.retrieval_s(output_bytes(tiny))
    scale = 34.2e-3 / (coral.power.readout_w * coral.readout_s
                                         + coral.power.inference_w * inference_s
                                         + coral.power.retrieval_w * coral.retrieval_s(output_bytes(tiny)))
    text = set_keys(text, "coral", "", {"int8_macs_per_s": mac_equivalent(tiny, coral) / inference_s,
                                        "inference_overhead_s": 0.0})
    text = set_keys(text, "coral", "power", {"readout_w": coral.power.readout_w * scale,
                                             "inference_w": coral.power.inference_w * scale,
                                             "retrieval_w": coral.power.retrieval_w * scale})
    PROFILES_FILE.write_text(text, encoding="utf-8")
    print(f"MACs: qsegment {qseg.macs:,}  tinytracker {tiny.macs:,}; elementwise ops: qsegment "
          f"{qseg.elementwise_ops:,}  tinytracker {tiny.elementwise_ops:,}")
    print(f"imx500: {1 / sec_per_mac / 1e9:.3f} GMAC/s, overhead {overhead_s * 1e6:.1f} µs, "
          f"inference {inference_w * 1e3:.2f} mW, readout/retrieval {other_w * 1e3:.2f} mW; Q-Segment frame "
          f"readout {qseg_readout_s * 1e3:.3f} ms at {qseg_readout_w * 1e3:.2f} mW")
    print(f"coral: {mac_equivalent(tiny, coral) / inference_s / 1e9:.3f} GMAC/s, inference {inference_s * 1e3:.2f} ms, power x{scale:.3f}")


if __name__ == "__main__":
    main()
