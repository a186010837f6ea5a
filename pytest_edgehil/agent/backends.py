"""The agent's backends, each declared in HELLO capabilities: which one a board runs is chosen at start.

- `litert-cpu`: LiteRT on the board's CPU, inputs pushed by the host (`litert_device`).
- `imx500`: the Raspberry Pi AI Camera through picamera2 (the IMX500 runs the network on the sensor's
  frames; its DNN and DSP runtimes come from the camera's KPI output). Declared here so a lab file can
  name it; it needs picamera2 and the camera, and refuses to start without them. Not implemented in
  this release beyond that check: a board that infers on sensor frames says `inputs:sensor` in HELLO.
"""

from __future__ import annotations

import importlib.util

from pytest_edgehil.errors import ConfigError

BACKENDS = {
    "litert-cpu": "LiteRT on this machine's CPU; the host pushes the inputs",
    "imx500": "Raspberry Pi AI Camera (IMX500) through picamera2; the network runs on sensor frames",
}


def check_backend(name: str) -> None:
    """Raise ConfigError, naming what is missing, when backend `name` cannot run on this machine."""
    if name not in BACKENDS:
        raise ConfigError(f"agent backend {name!r} is unknown; choose one of {', '.join(BACKENDS)}")
    if name == "imx500":
        if importlib.util.find_spec("picamera2") is None:
            raise ConfigError("agent backend 'imx500' needs picamera2 and the Raspberry Pi AI Camera: on Raspberry "
                              "Pi OS `sudo apt install python3-picamera2 imx500-all`; here picamera2 is not installed")
        raise ConfigError("agent backend 'imx500': picamera2 is present, but this release of the agent only "
                          "declares the backend; run `--backend litert-cpu` (see docs/hardware.md)")
