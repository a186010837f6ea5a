"""The results file: one JSON document per run, written as measurements arrive, read back by the gate.

Layout (``schema_version`` 2; version 1, without `direction` and `family`, still loads)::

    {"format": "pytest-edgehil results", "schema_version": 1,
     "run": {started_at, finished_at, complete, exit_status, backend, edgehil_version, git_commit,
             git_dirty, seed, lab, devices, python, platform, argv, run_id},
     "records": [{pair, model, device, kind, metric, value, unit, backend, status, bound, margin_rel,
                  samples, source, ci_low, ci_high, raw, context, direction, family, test, outcome,
                  median, published}, ...],
     "traces": [{pair, test, time_s, power_w, windows_s, backend, stages_s, zoom_time_s,
                 zoom_power_w, caption}, ...]}

One record per model × device × metric: `value` is what the budget was checked against (the median for
per-inference samples), `raw` the per-inference samples the gate tests, `status` the budget verdict,
`context` what makes two runs comparable (model SHA-256, firmware, protocol version, instrument
`*IDN?`, sample interval), `direction` ("higher", "lower" or null: unknown) and `family` the metric
vocabulary's verdict when it was recorded, budget included (see `vocabulary.py`). `traces` are the decimated power traces for the report's plots.

How it stays valid and cheap: while a run measures, its records are appended to a journal beside the
document, one fsynced JSON line per batch, O(1) per record (`results/journal.py`); the document holds
the run header and a `"journal"` key naming that file, and `load_results` reads the records from there.
When the run finishes, the document is written whole, once, without the key (each write goes to a
temporary file in the same directory, is fsynced, and replaces the old one with `os.replace`: a reader
sees the old or the new file, never half), and the journal is removed. A run killed by SIGKILL or a CI
timeout thus leaves every record it acknowledged, readable by `load_results`, `edgehil compare` and the
report; a reader that ignores the key (an older pytest-edgehil, jq) sees an incomplete run without records.
"""

from __future__ import annotations

import math
import os
import platform as _platform
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_edgehil import __version__
from pytest_edgehil.config.tomlfile import parse_json, read_text
from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.document_text import dump_document, finite_or_null, write_atomically
from pytest_edgehil.results.journal import JOURNAL_KEY, Journal, journal_path_for, read_journal
from pytest_edgehil.results.records import MetricRecord

if TYPE_CHECKING:
    from pytest_edgehil.measure.meter import EnergyMeasurement
    from pytest_edgehil.results.schema import ResultsSchema

FORMAT = "pytest-edgehil results"
SCHEMA_VERSION = 2  # 2: records carry `direction` and `family`; 1 still loads (vocabulary fallback)
GIT_TIMEOUT_S = 5.0
# CI systems check out a commit without always leaving `git` usable (shallow or detached copies,
# containers without git): their own variables name the commit then.
_CI_COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT", "BUILD_VCS_NUMBER")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunInfo:
    """What was run, where and when: the run-level half of "are these two results comparable"."""

    started_at: str
    backend: str  # SIMULATED | HW | MIXED (HW + SIMULATED)
    edgehil_version: str = __version__
    git_commit: str | None = None
    git_dirty: bool | None = None
    seed: int | None = None
    lab: str = ""
    devices: list[str] = field(default_factory=list)
    python: str = _platform.python_version()
    platform: str = _platform.platform(terse=True)
    argv: list[str] = field(default_factory=list)
    finished_at: str | None = None
    complete: bool = False  # false until the session finished: a killed run stays false
    exit_status: int | None = None
    # Unique to the run (`new_run_id()`, set by the writer): what the history store keys a run by, so
    # importing a file twice, or a copy of it, adds nothing. "" in files written before runs carried one.
    run_id: str = ""


@dataclass(frozen=True)
class ResultRecord(MetricRecord):
    """A `MetricRecord` plus the test that produced it and the median of its raw samples."""

    test: str = ""  # pytest node id
    outcome: str = ""  # passed | failed | skipped: the test's outcome (a budget failure still records)
    median: float | None = None  # median of `raw`, when there are raw samples

    @property
    def key(self) -> tuple[str, str]:
        return self.pair, self.metric

    @classmethod
    def from_metric_record(cls, record: MetricRecord, *, test: str = "", outcome: str = "") -> ResultRecord:
        median = float(np.median(record.raw)) if record.raw else None
        return cls(**asdict(record), test=test, outcome=outcome, median=median)


@dataclass
class ResultsFile:
    run: RunInfo
    records: list[ResultRecord] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None  # where it was read from, for messages

    def to_json_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "run": asdict(self.run),
                "records": [asdict(r) for r in self.records], "traces": list(self.traces)}


# ------------------------------------------------------------------------------------------ run context


def git_commit(cwd: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the work tree at `cwd`; CI's own variables when git cannot tell; (None, None)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
        if head.returncode == 0 and head.stdout.strip():
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False)
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
            return head.stdout.strip(), dirty
    except (OSError, subprocess.SubprocessError):
        pass  # no git on PATH, or it hung: fall back to what CI tells us
    for name in _CI_COMMIT_VARIABLES:
        if os.environ.get(name):
            return os.environ[name], None
    return None, None


# ---------------------------------------------------------------------------------------------- loading


RESULTS_FIX = "regenerate it with `pytest --edgehil-save PATH` or point to another file"


def _fail(where: str, what: str) -> ConfigError:
    return ConfigError(f"results file {where}: {what}; {RESULTS_FIX}")


def _entry(loc: tuple[int | str, ...], data: Any) -> tuple[str, tuple[int | str, ...]]:
    """`record #4`, `trace #2`, `run`: where in a results file an error is."""
    if len(loc) >= 2 and loc[0] in ("records", "traces") and isinstance(loc[1], int):
        return f"{'record' if loc[0] == 'records' else 'trace'} #{loc[1] + 1}", loc[2:]
    if len(loc) >= 2 and loc[0] == "run":
        return "run", loc[1:]
    return "", loc


def results_from_json(data: object, source: str = "<memory>") -> ResultsFile:
    """Validate and build a `ResultsFile` from parsed JSON; a ConfigError names the file, the record (or
    `run`, or trace) and the field. Keys this version does not know are ignored (see results/schema.py)."""
    from pytest_edgehil.config.schema import validate  # pydantic: loaded on use only
    from pytest_edgehil.results.schema import ResultsSchema

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(source, f"not a pytest-edgehil results file (no \"format\": \"{FORMAT}\")")
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ConfigError(f"results file {source}: schema version {version} was written by a newer "
                          f"pytest-edgehil (this one reads up to {SCHEMA_VERSION}); upgrade pytest-edgehil")
    parsed = validate(ResultsSchema, data, what="results file", source=source, fix=RESULTS_FIX, entry=_entry,
                      table="an object")
    return _results_file(parsed, source)


def _results_file(parsed: ResultsSchema, source: str) -> ResultsFile:
    run = parsed.run.model_dump(exclude_none=True)  # absent keys take RunInfo's defaults
    # A record's schema fields are ResultRecord's (tests/test_validation_results.py keeps them so): the
    # validated values are taken as they are, not copied through model_dump, and set on the frozen
    # dataclass at once rather than by its __init__'s one object.__setattr__ per field (together ~60 %
    # of a load's time after validation; the dataclass has no __post_init__ to skip).
    records = []
    for r in parsed.records:
        record = object.__new__(ResultRecord)
        record.__dict__.update(r.__dict__)
        if r.value is None:
            record.__dict__["value"] = math.nan
        records.append(record)
    traces = [t.model_dump(exclude_none=True) for t in parsed.traces]
    return ResultsFile(run=RunInfo(**run), records=records, traces=traces,
                       path=None if source == "<memory>" else Path(source))


def _load_fast(raw: bytes, source: str) -> ResultsFile | None:
    """A finished results file parsed and validated in one pass (`model_validate_json`: no Python JSON
    tree in between, ~3x faster on a 5,000-record night); None when the file is anything else (a run
    still measuring, another format or version, or invalid), which the reader then takes the long way,
    with its messages. The checks are the same schema's: nothing is accepted here that the long way refuses."""
    from pydantic import ValidationError

    from pytest_edgehil.results.schema import ResultsSchema

    try:
        parsed = ResultsSchema.model_validate_json(raw)
    except ValidationError:
        return None
    if parsed.format != FORMAT or parsed.schema_version > SCHEMA_VERSION or parsed.journal is not None:
        return None
    return _results_file(parsed, source)


def load_results(path: Path | str, raw: bytes | None = None) -> ResultsFile:
    """Read and validate a results file (or baseline); `raw`: its bytes, when the caller has read them
    already (the history store hashes them first). Raises ConfigError: missing, unreadable, not UTF-8,
    not JSON, or not the schema (naming the record and field)."""
    path = Path(path)
    try:
        fast = _load_fast(path.read_bytes() if raw is None else raw, str(path))
    except OSError:
        fast = None  # read_text below says what is wrong with the file
    if fast is not None:
        return fast
    text = read_text(path, "results file", RESULTS_FIX,
                     missing=f"results file {path} does not exist; save one with `pytest --edgehil-save {path}` "
                             "(on the main branch, for a baseline)")
    data = parse_json(text, "results file", str(path), RESULTS_FIX)
    if isinstance(data, dict) and isinstance(data.get(JOURNAL_KEY), str):
        # A run still measuring, or killed before it finished: its records are in the journal.
        _, records, traces = read_journal(path.parent / data[JOURNAL_KEY], str(path))
        data = {**data, "records": records, "traces": traces}
    return results_from_json(data, str(path))


# ---------------------------------------------------------------------------------------------- writing


def new_run_id() -> str:
    """A results file name stem unique to this run, sorting by start time: `20261130T101500Z-12345-a1b2`
    (UTC start, PID, random suffix: two runs started in one second, or on two hosts sharing a directory)."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}-{os.urandom(2).hex()}"


class ResultsWriter:
    """Keeps a results file current as records arrive: O(1) per `add`, a loadable file at every instant.

    Records go to the run's journal (one fsynced line per `add`); the document at `path` names the
    journal until `finish` writes it whole. With `latest`, the document is also written there (the same
    text, atomically) when the run starts writing and when it finishes, so `edgehil-results/latest.json`
    always loads as a whole run: the run that wrote it last — after the runs finish, the one that
    finished last. Each run keeps its own `path` and journal, so concurrent runs lose nothing.
    Raises ConfigError (naming the file and what to check) when a file cannot be written.
    """

    def __init__(self, path: Path | str, run: RunInfo, *, lazy: bool = False, latest: Path | str | None = None) -> None:
        self.path = Path(path)
        self.latest = Path(latest) if latest is not None else None
        self.lazy = lazy  # the default results file: written only once something was measured
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--edgehil-save {self.path}: cannot create directory {self.path.parent}: "
                              f"{exc.strerror}") from exc
        if not run.run_id:
            run = RunInfo(**{**asdict(run), "run_id": new_run_id()})
        self.results = ResultsFile(run=run)
        self.journal_path = journal_path_for(self.path, run.run_id)
        self._journal: Journal | None = None
        if not lazy:
            self._start()  # a valid file from the start: a run killed before any record still loads

    def _start(self) -> None:
        self._journal = Journal(self.journal_path, {"schema_version": SCHEMA_VERSION,
                                                    "run": asdict(self.results.run)})
        self._write(journal=True)

    def add(self, records: Iterable[ResultRecord] = (), traces: Iterable[Mapping[str, Any]] = ()) -> None:
        new_records, new_traces = list(records), [dict(t) for t in traces]
        if not new_records and not new_traces:
            return
        if self._journal is None:
            self._start()
        assert self._journal is not None
        self._journal.append(finite_or_null({"records": [asdict(r) for r in new_records], "traces": new_traces}))
        self.results.records.extend(new_records)
        self.results.traces.extend(new_traces)

    def finish(self, exit_status: int, *, complete: bool = True) -> None:
        """Stamp the end of the run; `complete` False for a run that was interrupted (Ctrl-C, SIGTERM)."""
        if self.lazy and not self.results.records:
            return
        run = self.results.run
        self.results.run = RunInfo(**{**asdict(run), "finished_at": utc_now(), "complete": complete,
                                      "exit_status": int(exit_status)})
        self._write(journal=False)
        if self._journal is not None:  # the document now holds everything: the journal has served
            self._journal.close()
            self._journal = None
            try:
                os.unlink(self.journal_path)
            except FileNotFoundError:
                pass

    def _write(self, *, journal: bool) -> None:
        data = finite_or_null(self.results.to_json_dict())
        if journal:
            data["records"], data["traces"] = [], []  # they live in the journal until the run finishes
        text = None
        for target in (self.path, self.latest):
            if target is None:
                continue
            if journal:
                data[JOURNAL_KEY] = os.path.relpath(self.journal_path, target.parent)
                text = None  # the journal's path is relative to each file
            text = text or dump_document(data)
            try:
                write_atomically(target, text)  # the run's own file first: a crash in between loses nothing
            except OSError as exc:
                raise ConfigError(f"--edgehil-save {target}: cannot write the results file: {exc.strerror}; "
                                  "check the directory exists and is writable") from exc


def prune_old_runs(directory: Path, keep: int, *, pattern: str = "2*.json") -> list[Path]:
    """Delete all but the `keep` newest per-run results files in `directory` (and their journals).

    Run files are named by `new_run_id()`, which sorts by start time; `latest.json` does not match the
    pattern and is never touched. Returns the files removed. Files that vanish meanwhile (another run
    pruning the same folder) are skipped. ConfigError if `keep` < 1.
    """
    if keep < 1:
        raise ConfigError(f"edgehil_results_keep must be >= 1 (runs kept), got {keep}")
    removed: list[Path] = []
    for old in sorted(directory.glob(pattern))[:-keep]:
        for victim in [old, *directory.glob(f".{old.name}.*.journal")]:
            try:
                victim.unlink()
                removed.append(victim)
            except FileNotFoundError:
                pass
    return removed


# ------------------------------------------------------------------------------- pytest-benchmark storage


def energy_extra_info(measurement: EnergyMeasurement, *, prefix: str = "edgehil_") -> dict[str, Any]:
    """Energy figures of one measurement, flat and JSON-ready, for pytest-benchmark's `extra_info`."""
    info: dict[str, Any] = {}
    # Same metric names as the energy suite records, so the two storages read alike.
    for metric, name in (("inference_mj", "inference_j"), ("end_to_end_mj", "end_to_end_j"),
                         ("inference_mw", "inference_power_w"), ("end_to_end_mw", "end_to_end_power_w")):
        summary = measurement.summary(name)
        info[f"{prefix}{metric}"] = summary.median * 1e3
        info[f"{prefix}{metric}_ci"] = [summary.ci_low * 1e3, summary.ci_high * 1e3]
    info[f"{prefix}samples"] = int(measurement.inference_j.size)
    info[f"{prefix}windows"] = len(measurement.windows)
    info[f"{prefix}sample_interval_s"] = measurement.sample_interval_s
    info[f"{prefix}instrument_idn"] = measurement.idn
    return info


def store_energy_in_benchmark(benchmark: Any, measurement: EnergyMeasurement) -> dict[str, Any]:
    """Put energy beside pytest-benchmark's timings (`benchmark.extra_info`), so `--benchmark-json`,
    `--benchmark-autosave` and `--benchmark-compare` carry it; returns what was added."""
    info = energy_extra_info(measurement)
    benchmark.extra_info.update(info)
    return info
