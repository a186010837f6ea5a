"""Power-analyzer drivers over PyVISA: one small interface, one driver per instrument model.

`open_analyzer(resource)` opens the VISA resource, asks `*IDN?` and returns the matching driver;
every driver returns a `Trace` (current and voltage against time, t = 0 at the trigger edge).
"""

from pytest_edgehil.instruments.base import PowerAnalyzer, Trace, open_analyzer
from pytest_edgehil.instruments.registry import driver_for_idn, known_models, register_analyzer

__all__ = ["PowerAnalyzer", "Trace", "driver_for_idn", "known_models", "open_analyzer", "register_analyzer"]
