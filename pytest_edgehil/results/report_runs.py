"""The runs a report shows: results files (or per-night directories of them) read into `ResultsRun`s.

Results files are read with `results.store.load_results`, the gate's own reader, so the report and the
gate never disagree about what a file holds; with a history store (`results/history.py`), through the
store, which validated each file once when it imported it. No pytest, no matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.gate_origins import current
from pytest_edgehil.results.store import ResultRecord, ResultsFile, load_results

if TYPE_CHECKING:
    from pytest_edgehil.results.history import History


@dataclass(frozen=True)
class Trace:
    pair: str
    time_s: list[float]
    power_w: list[float]
    windows_s: list[tuple[float, float]]
    backend: str
    stages_s: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # readout/inference/retrieval
    caption: str = ""  # analyzer, sample interval, uncertainty
    test: str = ""
    zoom_time_s: list[float] = field(default_factory=list)  # one inference at full resolution
    zoom_power_w: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ResultsRun:
    """One run (a results file, or a directory of them) as the report needs it."""

    source: str  # the file name, shown where a run has no start time
    started: datetime | None
    backend: str
    git_commit: str | None
    edgehil_version: str
    complete: bool  # false when the run was killed (or is still running): the table lacks what it never got to
    records: tuple[ResultRecord, ...]
    traces: tuple[Trace, ...]
    run_id: str = ""  # "" for a night directory (merged runs) and files written before runs carried one

    @property
    def label(self) -> str:
        """The start as date and minute in UTC, marked so (a lab across time zones reads one clock)."""
        return utc_label(self.started, self.source)

    def by_pair_metric(self) -> dict[tuple[str, str], ResultRecord]:
        """(pair, metric) -> record; of a metric recorded twice for a pair the first. For what needs one
        record per key only (the header's pair count); the table shows every record (`all_by_pair_metric`)."""
        table: dict[tuple[str, str], ResultRecord] = {}
        for record in self.records:
            table.setdefault((record.pair, record.metric), record)
        return table

    def all_by_pair_metric(self) -> dict[tuple[str, str], list[ResultRecord]]:
        """(pair, metric) -> every record of it, in the run's order. Two records of one key are two
        measurements (an `--edgehil-ab` test beside the energy suite): both are shown, labelled by test."""
        table: dict[tuple[str, str], list[ResultRecord]] = {}
        for record in self.records:
            table.setdefault((record.pair, record.metric), []).append(record)
        return table


def utc_label(when: datetime | None, source: str, seconds: bool = False) -> str:
    """`when` as "YYYY-MM-DD HH:MM[:SS] UTC", or `source` when the run has no start time."""
    if when is None:
        return source
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " UTC"


def _parse_started(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        started = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Naive and aware times cannot be compared; a writer that gave no offset is taken to mean UTC.
    return started if started.tzinfo else started.replace(tzinfo=timezone.utc)


def trace_from_dict(raw: dict[str, Any], where: Path | str, default_backend: str) -> Trace:
    """A trace as the recorder keeps it (and the results file holds it); ConfigError naming `where` if malformed."""
    try:
        return Trace(pair=str(raw["pair"]), time_s=[float(x) for x in raw["time_s"]],
                     power_w=[float(x) for x in raw["power_w"]],
                     windows_s=[(float(a), float(b)) for a, b in raw.get("windows_s", [])],
                     backend=str(raw.get("backend") or default_backend),
                     stages_s={str(k): [(float(a), float(b)) for a, b in v]
                               for k, v in (raw.get("stages_s") or {}).items()},
                     caption=str(raw.get("caption") or ""), test=str(raw.get("test") or ""),
                     zoom_time_s=[float(x) for x in raw.get("zoom_time_s") or ()],
                     zoom_power_w=[float(x) for x in raw.get("zoom_power_w") or ()])
    except (TypeError, KeyError, ValueError) as exc:
        raise ConfigError(f"results file {where}: trace of {raw.get('pair', '?')!r} is malformed ({exc!r}); "
                          "regenerate it with `pytest --edgehil-save PATH`") from None


def results_run(results: ResultsFile, source: str, where: Path | str) -> ResultsRun:
    """The report's view of a loaded run; `where` names it in messages about its traces."""
    run = results.run
    return ResultsRun(source=source, started=_parse_started(run.started_at), backend=run.backend,
                      git_commit=run.git_commit, edgehil_version=run.edgehil_version, complete=run.complete,
                      # A night from before a metric's rename (model_kb) on the trend of its new name.
                      records=tuple(current(r) for r in results.records),
                      traces=tuple(trace_from_dict(t, where, run.backend) for t in results.traces),
                      run_id=run.run_id)


def read_results(path: Path) -> ResultsRun:
    """One results file, read and validated by `results.load_results` (the gate's own reader)."""
    return results_run(load_results(path), Path(path).name, Path(path))


def night_files(path: Path) -> list[Path]:
    """The results files of one run: the file, or a directory's *.json files (one per device job of a CI
    matrix). ConfigError for a directory without any."""
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.json"))
    if not files:
        raise ConfigError(f"results directory {path}: no *.json results files in it; pass the directory that "
                          "holds one night's --edgehil-save files")
    return files


def merge_night(directory: Path, runs: Sequence[ResultsRun]) -> ResultsRun:
    """The runs of one night's directory as one run: its records and traces, the earliest start.

    Copies of a run (the same run id: `latest.json`) count once. ConfigError when two runs in it record one
    pair's metric: that is a folder of runs (`edgehil-results/`, a retried job), not one night's bench jobs,
    and a merged table would show whichever file sorts first under the newest run's name."""
    runs = each_run_once(runs)
    owners: dict[tuple[str, str], str] = {}
    for run in runs:
        for record in run.records:
            owner = owners.setdefault((record.pair, record.metric), run.source)
            if owner != run.source:
                raise ConfigError(
                    f"results directory {directory}: {owner} and {run.source} are two runs of {record.pair} "
                    f"({record.metric}); a directory is read as one run, one results file per bench job: pass "
                    f"the runs as files instead (`edgehil report {directory}/*.json ...`), or one directory per night")
    starts = [run.started for run in runs if run.started is not None]
    return ResultsRun(
        source=directory.name, started=min(starts) if len(starts) == len(runs) else None,
        backend=backends.pop() if len(backends := {run.backend for run in runs}) == 1 else "MIXED",
        git_commit=", ".join(sorted({run.git_commit for run in runs if run.git_commit})) or None,
        edgehil_version=", ".join(sorted({run.edgehil_version for run in runs if run.edgehil_version})),
        complete=all(run.complete for run in runs), records=tuple(r for run in runs for r in run.records),
        traces=tuple(t for run in runs for t in run.traces))


def read_night(path: Path) -> ResultsRun:
    """A results file, or a directory whose *.json files (one per device job of a CI matrix) are one run."""
    path = Path(path)
    if not path.is_dir():
        return read_results(path)
    return merge_night(path, [read_results(f) for f in night_files(path)])


_Part = tuple[str, "Path | None", "ResultsFile | None"]  # (store key, results file, its content when it was read)


def read_nights_from_history(history: History, paths: Sequence[Path], last: int | None = None) -> list[ResultsRun]:
    """What `read_night` gives for each path, read from the history store (files it does not hold are
    imported), then the `last` runs the store holds besides them. Oldest first, as `order_runs`.

    Only the newest run is read with its traces and only the newest two with their samples and context
    (the gate compares those two); the others' records carry raw and context None: the trends need neither,
    and skipping them is most of what reading a night costs.
    """
    nights: list[tuple[Path | None, list[_Part]]] = []
    for path in map(Path, paths):
        parts: list[_Part] = [(key, f, content) for f in night_files(path) for key, content in [history.import_file(f)]]
        if not path.is_dir() and any(name is None and held[0][0] == parts[0][0] for name, held in nights):
            continue  # a copy of a run given already (latest.json): one run, or the gate compares it with itself
        nights.append((path if path.is_dir() else None, parts))
    if last:
        shown = {key for _, parts in nights for key, _, _ in parts}
        nights += [(None, [(key, None, None)]) for key in history.latest(last) if key not in shown]
    starts = []
    for _, parts in nights:
        part_starts = [_parse_started((content.run if content else history.run_info(key)).started_at)
                       for key, _, content in parts]
        starts.append(None if None in part_starts else min(s for s in part_starts if s is not None))
    order = list(range(len(nights)))
    if all(start is not None for start in starts):
        order.sort(key=lambda i: starts[i])  # type: ignore[arg-type, return-value]

    def build(night: tuple[Path | None, list[_Part]], samples: bool, traces: bool) -> ResultsRun:
        directory, parts = night
        runs = []
        for key, path, content in parts:
            results = content or history.load(key, samples=samples, traces=traces, path=path)
            where = path or f"{history.path} (run {results.path.name if results.path else key})"
            runs.append(results_run(results, results.path.name if results.path else key, where))
        return runs[0] if directory is None else merge_night(directory, runs)

    return [build(nights[i], samples=rank >= len(order) - 2, traces=rank == len(order) - 1)
            for rank, i in enumerate(order)]


def each_run_once(runs: Sequence[ResultsRun]) -> list[ResultsRun]:
    """`runs` without copies of a run already given (the same run id), in the order given."""
    seen: set[str] = set()
    once = []
    for run in runs:
        if run.run_id and run.run_id in seen:
            continue
        seen.add(run.run_id)
        once.append(run)
    return once


def order_runs(runs: Sequence[ResultsRun]) -> list[ResultsRun]:
    """Oldest first by start time; in the order given when any run lacks one (then the last is newest).
    Each run once: a copy of a run (the same run id; `edgehil-results/*.json` takes `latest.json`, a copy
    of the newest) is the same session, and the gate would compare the newest run with itself."""
    runs = each_run_once(runs)
    if all(run.started is not None for run in runs):
        return sorted(runs, key=lambda run: run.started)  # type: ignore[arg-type, return-value]
    return list(runs)
