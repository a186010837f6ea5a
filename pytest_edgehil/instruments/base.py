"""The one small interface every power-analyzer driver implements, and the trace it returns.

Measurement code talks to `PowerAnalyzer` only: configure a triggered capture, arm it on the device's
trigger line (EXT) or a software trigger (BUS), wait for it, fetch the trace. How a given instrument
spells that in SCPI lives in its driver module; which driver to use is decided from `*IDN?` by
`registry.open_analyzer`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from pytest_edgehil.errors import ConfigError, InstrumentError, MeasurementError
from pytest_edgehil.instruments.accuracy import AccuracySpec, CaptureAccuracy

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

TRIGGER_SOURCES = ("EXT", "BUS")


@dataclass(frozen=True)
class Trace:
    """One captured window: current and voltage sampled every `sample_interval_s`."""

    # The readings as the instrument sent them: float32 from a binary block (exact, half the memory of
    # float64), float64 from text; `power_w` is float64 either way.
    current_a: np.ndarray
    voltage_v: np.ndarray  # constant array if the instrument did not digitize voltage
    sample_interval_s: float
    trigger_index: int  # sample index of the trigger instant (= pre-trigger points)
    idn: str
    #: False: the instrument has no trigger in this capture (a FastLog stream starts when it is armed);
    #: `trigger_index` is then 0, the stream's first sample, and the run must be placed from the trace
    #: itself (`measure.run_start`).
    trigger_located: bool = True
    # The device's trigger line sampled with the current on the same time base (bool per sample), from a
    # power monitor with a digital input (PPK2 logic port, Joulescope GPI, Otii GPI); None where the
    # instrument records no digital channel (the SCPI analyzers, the LPM01A).
    digital: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.current_a.shape != self.voltage_v.shape:
            raise MeasurementError(
                f"trace from {self.idn!r}: {self.current_a.size} current samples but "
                f"{self.voltage_v.size} voltage samples; the fetch was cut short, fetch again")
        if self.digital is not None and self.digital.shape != self.current_a.shape:
            raise MeasurementError(
                f"trace from {self.idn!r}: {self.digital.size} digital samples but {self.current_a.size} "
                "current samples; the stream was cut short between them, capture again")
        if not 0 <= self.trigger_index <= self.current_a.size:
            raise MeasurementError(
                f"trace from {self.idn!r}: trigger index {self.trigger_index} lies outside its "
                f"{self.current_a.size} samples; check the pre-trigger setting")

    @property
    def time_s(self) -> np.ndarray:
        """Sample instants relative to the trigger edge (t = 0 at the trigger)."""
        return (np.arange(self.current_a.size) - self.trigger_index) * self.sample_interval_s

    @property
    def power_w(self) -> np.ndarray:
        """Power per sample, W, float64: the product of two float32 readings is exact in float64, so this
        equals widening both first."""
        return np.multiply(self.current_a, self.voltage_v, dtype=np.float64)

    @property
    def duration_s(self) -> float:
        return self.current_a.size * self.sample_interval_s


class PowerAnalyzer(abc.ABC):
    """A supply/analyzer channel that digitizes the device's current in a triggered window."""

    #: Human name of the instrument model ("Keysight N6705C + N6781A").
    model: ClassVar[str] = "power analyzer"
    #: The shortest sample interval the hardware can resolve, in seconds.
    min_sample_interval_s: ClassVar[float]
    #: The most points one capture can hold (per digitized quantity).
    max_points: ClassVar[int]
    #: Whether a capture can hold samples from before its trigger (the Keithley 2281S's buffer cannot).
    keeps_pretrigger: ClassVar[bool] = True
    #: Seconds a capture may run before the device starts: 0 for a triggered capture; for a stream that
    #: starts when armed (NGM202 FastLog), the host's latency between arm() and the device's RUN, which
    #: the capture must hold on top of the run (`measure.meter.plan_acquisition` adds it).
    start_latency_s: ClassVar[float] = 0.0
    #: The data sheet's DC accuracy per current range and for voltage (`instruments.accuracy`), declared by
    #: each driver beside its other settings; None: undeclared, and the meter states no figure from it.
    accuracy: ClassVar[AccuracySpec | None] = None
    #: Whether the trace's voltage is read by the instrument (else it is the programmed voltage).
    voltage_measured: ClassVar[bool] = True

    idn: str
    resource: str
    channel: int

    @abc.abstractmethod
    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        """Program the supply voltage, current range and a capture of `points` samples."""

    @abc.abstractmethod
    def arm(self, source: str = "EXT") -> None:
        """Start the acquisition; it triggers on the device's trigger line (EXT) or on *TRG (BUS)."""

    @abc.abstractmethod
    def wait_complete(self, timeout_s: float) -> None:
        """Block until the armed acquisition has triggered and finished; InstrumentTimeout if not."""

    @abc.abstractmethod
    def fetch_trace(self) -> Trace:
        """Read the completed capture back from the instrument."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drain the error queue and release the VISA session."""

    def power_up(self, *, voltage_v: float, current_range_a: float) -> None:
        """Power the board and make the trigger input ready, before the board is first contacted.

        A board powered by the analyzer cannot answer HELLO before its supply is on; an external trigger
        cannot fire before its input is configured. Raises InstrumentError where the driver cannot.
        """
        raise InstrumentError(f"{self.model} at {self.resource}: this driver cannot power a board; power it "
                              "otherwise and leave `analyzer` out of its lab-file table, or use a supported driver")

    def capture_accuracy(self) -> CaptureAccuracy:
        """The accuracy of the capture as configured: the declared spec, the range in use (None: each sample
        on its own range) and which voltage figure applies. ConfigError for a driver that declares none."""
        return CaptureAccuracy(self.declared_accuracy(), self.model, None, self.voltage_measured)

    @classmethod
    def declared_accuracy(cls) -> AccuracySpec:
        """`accuracy`, or ConfigError naming the driver: a figure whose instrument error is unknown is not stated."""
        if cls.accuracy is None:
            raise ConfigError(f"{cls.model} ({cls.__name__}) declares no measurement accuracy, so no energy it "
                              "measures can carry an uncertainty; declare `accuracy` from its data sheet "
                              "(instruments.accuracy.AccuracySpec, docs/extending.md)")
        return cls.accuracy

    def supported_sample_interval_s(self, requested_s: float) -> float:
        """The interval this instrument would actually sample at for a request: the nearest one it
        supports at or above `requested_s`. For planning; `configure` itself never rounds silently."""
        return max(requested_s, self.min_sample_interval_s)

    def check_resolves(self, window_s: float, *, min_samples: int = 2) -> None:
        """Raise MeasurementError if a window of `window_s` is too short for this instrument to resolve.

        A figure computed from fewer than `min_samples` samples is not a measurement; say so rather
        than report a number.
        """
        needed_s = min_samples * self.min_sample_interval_s
        if window_s < needed_s:
            raise MeasurementError(
                f"{self.model} at {self.resource} samples at most every "
                f"{self.min_sample_interval_s * 1e6:g} us, so a {window_s * 1e6:g} us window gets fewer "
                f"than {min_samples} samples: it cannot resolve this window. Measure a longer window "
                f"(e.g. many inferences per trigger) or use a digitizing analyzer.")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.resource} ch{self.channel}>"


def open_analyzer(resource: str, *, channel: int = 1, resource_manager: Any = None,
                  timeout_ms: int = 5000) -> PowerAnalyzer:
    """Open `resource`, ask `*IDN?` and return the matching driver (see `registry.open_analyzer`)."""
    # Imported here: the registry imports the driver modules, which import this module.
    from pytest_edgehil.instruments.registry import open_analyzer as _open

    return _open(resource, channel=channel, resource_manager=resource_manager, timeout_ms=timeout_ms)
