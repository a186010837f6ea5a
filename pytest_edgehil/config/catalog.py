"""The model catalog: shipped reference models by name (with their cards) and users' own .tflite files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.config.tomlfile import parse_json, read_text
from pytest_edgehil.errors import ConfigError, ModelCardMismatch, ModelError

if TYPE_CHECKING:  # the model analysis (numpy, flatbuffers) is imported when a model's info is first asked for
    from pytest_edgehil.model.info import ModelInfo


@dataclass(frozen=True)
class CatalogModel:
    name: str
    path: Path
    card: dict[str, Any] = field(default_factory=dict, compare=False)

    @cached_property
    def data(self) -> bytes:
        """The file's bytes, once they match the card's `sha256` (when it states one): every path that
        analyses, uploads or copies a catalog model reads them here. ModelCardMismatch otherwise."""
        data = self.path.read_bytes()
        check_card_hash(self.name, self.path, data, self.card)
        return data

    @property
    def card_path(self) -> Path:
        return self.path.with_suffix(".json")

    @cached_property
    def input_shapes(self) -> tuple[tuple[int, ...], ...] | None:
        """The card's `input.shape` when every dimension is given (no -1): the size a model with dynamic
        input dimensions is analysed, timed and fed at. None without one (a static model needs none)."""
        shape = (self.card.get("input") or {}).get("shape")  # validated: a list of ints >= -1
        if not shape or any(int(d) < 0 for d in shape):
            return None
        return (tuple(int(d) for d in shape),)

    @cached_property
    def info(self) -> ModelInfo:
        """The static analysis; a model with dynamic inputs at its card's `input.shape` when the card gives
        one (else unresolved: its cost figures raise). ModelError for a damaged file, or a card shape the
        model cannot take (naming the card)."""
        from pytest_edgehil.model.info import analyze_model

        info = analyze_model(self.data, name=self.name)
        if not info.dynamic_inputs or self.input_shapes is None:
            return info
        try:
            return analyze_model(self.data, name=self.name, input_shapes=self.input_shapes)
        except ModelError as exc:
            raise ModelError(f"{exc} (the shape is `input.shape` of its card {self.card_path}: give the size "
                             "to measure there, every dimension the model leaves open as a number >= 1)") from exc

    def check(self) -> None:
        """Read and analyse the file now, before any device is touched: a damaged or truncated file, and a
        model with dynamic inputs whose card gives no size to run it at, raise ModelError naming the file
        and the fix (the device would refuse the first at LOAD_END and the second at every RUN)."""
        try:
            info = self.info
        except OSError as exc:
            raise ModelError(f"model file {self.path} cannot be read ({exc.strerror or exc}); check the path "
                             "and its permissions") from exc
        except ModelCardMismatch:
            raise  # names the model, the file and both hashes already
        except ModelError as exc:
            raise ModelError(f"model file {self.path}: {exc}. Refused at start-up: nothing was sent to any "
                             "device") from exc
        # One SET_INPUT frame carries a whole input tensor: one larger than the protocol's payload limit
        # could never be sent (the device would refuse it at every test, saying only "too large").
        from pytest_edgehil.link.framing import MAX_PAYLOAD

        for spec in info.inputs if info.resolved else ():
            size = spec.size_bytes
            if size > MAX_PAYLOAD - 64:
                shape = "x".join(str(d) for d in spec.shape)
                raise ModelError(f"model file {self.path}: input {spec.name!r} at shape {shape} is {size:,} bytes, "
                                 f"over the {MAX_PAYLOAD // (1024 * 1024)} MiB one SET_INPUT frame carries; measure "
                                 f"a smaller input shape (its card {self.card_path}, `input.shape`) or a smaller "
                                 "model. Refused at start-up: nothing was sent to any device")
        problem = self._card_shape_problem(info)
        if problem is not None:
            raise ModelError(f"model file {self.path}: {problem}: the card describes another model. Correct "
                             "the card's shape (or leave the key out)")
        # One RESULT carries every output of a RUN's last inference beside its stage times: outputs larger
        # than a frame could never come back (the device would fail every RUN, reading as a firmware fault).
        out_bytes = sum(spec.size_bytes for spec in info.outputs) if info.resolved else 0
        if out_bytes > MAX_PAYLOAD - 1024:
            listed = ", ".join(f"output {spec.name!r} {'x'.join(str(d) for d in spec.shape)} ({spec.size_bytes:,} "
                               "bytes)" for spec in info.outputs)
            raise ModelError(f"model file {self.path}: {listed}: {out_bytes:,} bytes of outputs, over the "
                             f"{MAX_PAYLOAD // (1024 * 1024)} MiB one RESULT frame carries back; measure a model "
                             "with smaller outputs (or a smaller input shape, its card's `input.shape`). Refused "
                             "at start-up: nothing was sent to any device")
        if not info.resolved:
            example = ", ".join("N" if d < 0 else str(d) for d in next(iter(info.dynamic_inputs.values())))
            raise ModelError(f"model file {self.path}: {info.dynamic_text()}, so it has no size to time or "
                             f"feed. Give the input shape to measure in its card {self.card_path}: "
                             f'{{"input": {{"shape": [{example}]}}}} with each N the size you feed '
                             "(docs/models.md)")

    def _card_shape_problem(self, info: ModelInfo) -> str | None:
        """Where the card's `input.shape` / `output.shape` contradict the file (a static input; the output
        when the model has one or the card names it): a dimension may be -1 (open) or a size-1 one left out."""
        outputs = info.outputs
        named = (self.card.get("output") or {}).get("name")
        output = next((o for o in outputs if o.name == named), None) if named else (outputs[0] if len(outputs) == 1 else None)
        checks = [("output", output)]
        if not info.dynamic_inputs and len(info.inputs) == 1:
            checks.insert(0, ("input", info.inputs[0]))
        for key, spec in checks:
            stated = (self.card.get(key) or {}).get("shape")
            if stated is None or spec is None or not info.resolved:
                continue
            actual = tuple(int(d) for d in spec.shape)
            same_rank = len(stated) == len(actual) and all(int(s) in (a, -1) for s, a in zip(stated, actual))
            if not same_rank and [d for d in stated if d != 1] != [d for d in actual if d != 1]:
                return (f"its card {self.card_path} states {key}.shape {list(stated)}, the file's {key} "
                        f"{spec.name!r} is {list(actual)}")
        return None

    @cached_property
    def scored_output(self) -> int:
        """Index of the output the accuracy tests score: the only one, or the one whose tensor name is the
        card's `output.name`. ModelError naming the card and every output otherwise: a converter orders
        outputs as it likes, and output 0 of a model that also exports its logits (or an auxiliary head)
        would be scored as the prediction and give a plausible wrong figure."""
        outputs = self.info.outputs
        wanted = (self.card.get("output") or {}).get("name")
        if wanted is None and len(outputs) == 1:
            return 0
        names = [spec.name for spec in outputs]
        if wanted in names:
            return names.index(wanted)
        listed = "; ".join(f"{i}: {spec.name!r} {spec.describe()}" for i, spec in enumerate(outputs))
        said = f"its card names output {wanted!r}, which it does not have" if wanted is not None \
            else f"it has {len(outputs)} outputs and its card names none"
        raise ModelError(f"model {self.name!r} ({self.path}): {said}; outputs: {listed}. Give the tensor name of "
                         f'the output to score as `output.name` in its card {self.card_path} ({{"output": '
                         f'{{"name": "..."}}}}, docs/config-files.md)')

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
        rng = self._card_input_range or [0.0, 1.0]  # validated: two finite floats, low < high
        return float(rng[0]), float(rng[1])

    @property
    def input_range_stated(self) -> bool:
        """Whether `input_range` is the card's `input.range`, not the default."""
        return self._card_input_range is not None

    @property
    def _card_input_range(self) -> list[float] | None:
        return (self.card.get("input") or {}).get("range")


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


def check_card_hash(name: str, path: Path, data: bytes, card: Mapping[str, Any]) -> None:
    """Raise ModelCardMismatch when `card` states a `sha256` that is not the SHA-256 of `data` (the bytes
    of the model file at `path`). A card without one checks nothing (a user's own card may omit it)."""
    stated = card.get("sha256")
    if stated is None:
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual == str(stated).lower():  # hex in either case: Windows' tools print upper case
        return
    card_path = path.with_suffix(".json")
    size = f"; the card states {card['file_bytes']:,} bytes" if card.get("file_bytes") is not None else ""
    raise ModelCardMismatch(
        f"model {name!r}: file {path} ({len(data):,} bytes{size}) has SHA-256 {actual}, but its card {card_path} "
        f"states {stated}: the card's metrics and provenance describe another file. Restore the file the card "
        f"describes (re-copy or re-export it), or, if this file is the intended model, update the card's "
        f"`sha256` (and `file_bytes`) to it",
        model=name, path=str(path), stated=str(stated), actual=actual)


CARD_FIX = "fix the card (its keys are listed in docs/config-files.md) or delete it: a model needs no card"


def card_from_data(data: Any, path: Path | str) -> dict[str, Any]:
    """The card as parsed, once it passed the `ModelCard` schema (a JSON object of known, typed keys)."""
    from pytest_edgehil.config.card_schemas import ModelCard
    from pytest_edgehil.config.schema import validate  # pydantic: loaded on use only

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
