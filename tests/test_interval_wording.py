"""Sample intervals in messages read as an engineer writes them: 1000 µs, 40.96 µs, not 1e+03 µs."""

from __future__ import annotations

from pytest_edgehil.errors import CannotResolve


def test_a_millisecond_interval_is_written_out() -> None:
    text = str(CannotResolve("inference window", (0.0, 5.7e-3), 1e-3, "the retrieval stage is too short", "fix"))
    assert "at a 1000 µs sample interval" in text and "e+" not in text


def test_the_n6705c_grid_keeps_its_digits() -> None:
    assert "at a 40.96 µs sample interval" in str(CannotResolve("w", (0.0, 1e-3), 40.96e-6, "r", "f"))
