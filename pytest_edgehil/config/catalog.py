"""The model catalog: shipped reference models by name (with their cards) and users' own .tflite files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.config.tomlfile import parse_json, read_text
from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:  # the model analysis (numpy, flatbuffers) is imported when a model's info is first asked for
    from pytest_edgehil.model.info import ModelInfo


@dataclass(frozen=True)
class CatalogModel:
    name: str
    path: Path
    card: dict[str, Any] = field(default_factory=dict, compare=False)

    @cached_property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @cached_property
    def info(self) -> ModelInfo:
        from pytest_edgehil.model.info import analyze_model

        return analyze_model(self.data, name=self.name)

    @property
    def task(self) -> str:
        return str(self.card.get("task") or "unknown")

    def artifact_for(self, kind: str) -> tuple[bytes, str]:
        """(bytes, file name) of what a board of `kind` runs: the card's compiled artifact for that kind
        (`artifacts = {kind: path}`, relative to the card), else the source .tflite. ConfigError naming the
        card and the kind when a declared artifact is missing."""
        declared = (self.card.get("artifacts") or {}).get(kind)
        if declared is None:
            return self.data, self.path.name
        artifact = (self.path.parent / declared).resolve()
        try:
            return artifact.read_bytes(), artifact.name
        except OSError as exc:
            raise ConfigError(f"model {self.name!r}: its card {self.path.with_suffix('.json')} declares artifact "
                              f"{declared!r} for device kind {kind!r}, but it cannot be read ({exc}); build it or "
                              "remove the entry") from exc

    @property
    def input_range(self) -> tuple[float, float]:
        """The float range the model's input expects for an 8-bit image (from its card; default [0, 1])."""
        rng = (self.card.get("input") or {}).get("range") or [0.0, 1.0]  # validated: two finite floats, low < high
        return float(rng[0]), float(rng[1])


class ModelCatalog:
    """Models in a directory (`NAME.tflite` + optional `NAME.json` card), looked up by name or path."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def names(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(p.stem for p in self.models_dir.glob("*.tflite"))

    def get(self, name_or_path: str) -> CatalogModel:
        candidate = Path(name_or_path)
        if candidate.suffix == ".tflite":
            if not candidate.is_file():
                raise ConfigError(f"--model {name_or_path}: no such file; give a .tflite path or one of "
                                  f"{', '.join(self.names()) or '(none shipped)'}")
            return CatalogModel(candidate.stem, candidate.resolve(), _read_card(candidate.with_suffix(".json")))
        path = self.models_dir / f"{name_or_path}.tflite"
        if not path.is_file():
            raise ConfigError(f"model {name_or_path!r} is not in {self.models_dir}; known models: "
                              f"{', '.join(self.names()) or '(none)'}; or pass --model PATH.tflite")
        return CatalogModel(name_or_path, path, _read_card(path.with_suffix(".json")))


CARD_FIX = "fix the card (its keys are listed in docs/config-files.md) or delete it: a model needs no card"


def card_from_data(data: Any, path: Path | str) -> dict[str, Any]:
    """The card as parsed, once it passed the `ModelCard` schema (a JSON object of known, typed keys)."""
    from pytest_edgehil.config.schema import validate  # pydantic: loaded on use only
    from pytest_edgehil.config.schemas import ModelCard

    if not isinstance(data, dict):
        raise ConfigError(f"model card {path}: must be a JSON object ({{...}}), got {describe_json(data)}; "
                          f"{CARD_FIX}")
    validate(ModelCard, data, what="model card", source=str(path), fix=CARD_FIX, table="an object")
    return dict(data)


def describe_json(value: object) -> str:
    """null, 5, [1], "x": a JSON value as the file wrote it, shortened."""
    text = "null" if value is None else json.dumps(value) if isinstance(value, (int, float, str, bool)) \
        else type(value).__name__
    return {"list": "a list", "dict": "an object"}.get(text, text[:40])


def _read_card(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    text = read_text(path, "model card", CARD_FIX)
    return card_from_data(parse_json(text, "model card", str(path), CARD_FIX), path)
