"""A budget key whose unit is written another way than the built-in's: the message names the built-in and,
for another scale of the same quantity, the limit converted to the built-in's unit.

Seen from outside: `inference_mJ` was answered "did you mean `inference_mw`?" (a power, for an energy
written with a capital J); `inference_uJ = { max = 2000 }` the same, though the user meant the inference
energy in µJ. The converted bounds below are by hand: 2000 µJ = 2 mJ, 150 µs = 0.15 ms.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgehil.config.budgets import load_budgets
from pytest_edgehil.errors import ConfigError


def _refused(tmp_path: Path, limit: str) -> str:
    path = tmp_path / "budgets.toml"
    path.write_text(f'[[budget]]\nmodel = "qsegment"\ndevice = "coral"\n[budget.limits]\n{limit}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_budgets(path)
    return str(caught.value)


@pytest.mark.parametrize("key", ["inference_mJ", "Inference_MJ", '"inference_mj "'])
def test_a_case_or_space_typo_of_a_built_in_is_pointed_at_it(tmp_path: Path, key: str) -> None:
    message = _refused(tmp_path, f"{key} = {{ max = 2.0 }}")
    assert "did you mean `inference_mj`?" in message, message


@pytest.mark.parametrize(("key", "bounds", "converted"), [
    ("inference_uJ", "max = 2000", "inference_mj = { max = 2 }"),
    ('"inference_µj"', "max = 2000", "inference_mj = { max = 2 }"),
    ("inference_us", "min = 10, max = 150", "inference_ms = { min = 0.01, max = 0.15 }"),
    # Every digit the user wrote survives: 1,234,567 µs = 1234.567 ms, 0.01234567 s = 12.34567 ms (a 6-digit
    # format gave 1234.57 and 12.3457, a limit the user would paste in, tighter or looser than theirs).
    ("inference_us", "max = 1234567", "inference_ms = { max = 1234.567 }"),
    ("inference_s", "max = 0.01234567", "inference_ms = { max = 12.34567 }"),
    ("inference_s", "max = 0.1", "inference_ms = { max = 100 }"),
])
def test_another_scale_of_a_built_in_s_unit_is_converted_in_the_message(tmp_path: Path, key: str, bounds: str,
                                                                          converted: str) -> None:
    message = _refused(tmp_path, f"{key} = {{ {bounds} }}")
    assert converted in message, message
