"""What the gate compares, checked before it compares: a baseline of one or more sessions, and inputs that
would make a pass meaningless — each a named verdict that fails the gate unless the user allows it.

* `incomplete`: a run that did not finish (`complete: false`: killed, Ctrl-C, SIGTERM, a CI timeout);
  what it lacks would show as MISSING/NEW and the rest compares fine, so nobody would notice.
* `empty`: a results file with no records (a run that selected nothing): every comparison is vacuous.
* `failed-tests`: records of tests that failed (a budget exceeded, an error after measuring): a number
  from a failing test is not a reference, and a failing candidate should not pass by comparison.
* `model-changed`: an A/A comparison (both runs of one clean commit) in which a pair's model SHA-256
  differs: the "same code" ran a different model, so the A/A spread it shows is not the bench's.
* `duplicates`: one pair × metric recorded by several tests with different values (a test parametrized
  over evaluation splits or input sizes): the verdict table shows one line per pair × metric and test, and
  a name of its own per value is what keeps a history readable. Allowed, each test's value is compared
  with the same test's in the baseline (`gate_origins.py`), never "the first", which is test-order luck.

No pytest; reading files goes through `store.load_results`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.results.comparison import InputProblem, listed
from pytest_edgehil.results.gate_origins import REPEAT_ID
from pytest_edgehil.results.records import paired_rounds
from pytest_edgehil.results.store import ResultRecord, ResultsFile, load_results

INPUT_KINDS = ("incomplete", "empty", "failed-tests", "model-changed", "duplicates")
LATEST_COPY = "latest.json"  # a copy of the newest run in a results directory: not a session of its own


def parse_allow(text: str | None, option: str = "--edgehil-allow") -> frozenset[str]:
    """`incomplete,failed-tests` → the input problems that do not fail the gate. Raises ConfigError."""
    kinds = frozenset(t.strip() for t in (text or "").split(",") if t.strip())
    unknown = sorted(kinds - set(INPUT_KINDS))
    if unknown:
        raise ConfigError(f"{option} {text!r}: unknown input problem {', '.join(map(repr, unknown))}; use any of "
                          f"{', '.join(INPUT_KINDS)} (comma-separated)")
    return kinds


def load_baseline(path: Path | str, *, read: Callable[[Path], ResultsFile] = load_results,
                  leave_out: ResultsFile | None = None, notes: list[str] | None = None) -> list[ResultsFile]:
    """A baseline of one session (a results file) or several (a directory of them: one file per session,
    oldest first by their start time; `latest.json`, a copy of the newest, is skipped), each file read by
    `read` (a history store's `load_file` reads it through the store); `baseline_sessions` also says
    which files it left out.

    A session is a run, not a file: copies of one run (the same run id) count once, and the run under
    test, `leave_out`, is no session of its own baseline (`pytest --edgehil-save nightly/today.json`, then
    `edgehil compare nightly/ nightly/today.json`): compared with itself, a regression would pass as
    drift. A run in a directory that has not finished (no `finished_at` and not `complete`: still measuring
    into it, or killed before it could finish) is no session either: it is left out, with a sentence appended to `notes`
    (a file named as the baseline is read as it is, and an unfinished one is INCOMPLETE). Raises
    ConfigError for a missing path, an unreadable file, a directory without results files, or a baseline
    that holds nothing but the run under test and unfinished runs."""
    return baseline_sessions(path, read=read, leave_out=leave_out, notes=notes)[0]


def baseline_sessions(path: Path | str, *, read: Callable[[Path], ResultsFile] = load_results,
                      leave_out: ResultsFile | None = None,
                      notes: list[str] | None = None) -> tuple[list[ResultsFile], list[Path]]:
    """`load_baseline`, and the files of the run under test it found among the baseline's and left out."""
    path = Path(path)
    if not path.is_dir():
        files = [path]
    else:
        files = sorted(p for p in path.glob("*.json") if p.name != LATEST_COPY)
        if not files:
            raise ConfigError(f"baseline directory {path} holds no results files (*.json); save sessions into "
                              f"it with `pytest --edgehil-save {path}/<name>.json` on the baseline branch")
    sessions: list[ResultsFile] = []
    seen: set[str] = set()
    left_out: list[Path] = []
    unfinished: list[Path] = []
    for file in files:
        results = read(file)
        if path.is_dir() and results.run.finished_at is None and not results.run.complete:
            # Tonight's run writing into the nightly directory while a branch's gate reads it: not a session
            # yet, and failing every gate as EMPTY or INCOMPLETE until it finishes would be a false refusal.
            unfinished.append(file)
            if notes is not None:
                notes.append(f"{file.name} in {path} has not finished (still measuring, or killed before it could "
                             f"finish; started {results.run.started_at}): left out of the baseline")
            continue
        run_id = results.run.run_id
        if leave_out is not None and ((run_id and run_id == leave_out.run.run_id)
                                      or (leave_out.path is not None and _same_file(file, leave_out.path))):
            left_out.append(file)
            continue
        if run_id in seen:
            continue  # a copy of a run already read (files written before runs carried an id have "")
        if run_id:
            seen.add(run_id)
        sessions.append(results)
    if not sessions and unfinished:
        raise ConfigError(f"baseline {path} holds no finished session: {', '.join(p.name for p in unfinished)} "
                          "did not finish (still measuring, or killed); wait for it, or compare with the results "
                          "of earlier runs")
    if not sessions:
        raise ConfigError(f"baseline {path} holds no session but the run under test ({', '.join(map(str, left_out))}, "
                          f"run id {leave_out.run.run_id if leave_out else '?'}): a run is not its own baseline; "
                          "compare with the results of earlier runs")
    return sorted(sessions, key=lambda f: f.run.started_at), left_out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _name(results: ResultsFile, side: str) -> str:
    where = f" {results.path}" if results.path else ""
    return f"{side}{where} (started {results.run.started_at})"


def check_inputs(baseline: Sequence[ResultsFile], new: ResultsFile | None, allow: frozenset[str] = frozenset(), *,
                 check_new_run: bool = True) -> list[InputProblem]:
    """Every input problem of the baseline sessions and of the new run (`new` None: only the baseline).
    `check_new_run` False skips `incomplete` and `failed-tests` of the new side (inside pytest, the run is
    not finished yet and its failed tests fail it anyway)."""
    problems: list[tuple[str, str]] = []
    sides = [(f, "baseline") for f in baseline] + ([(new, "this run")] if new is not None else [])
    for results, side in sides:
        is_new = results is new
        if not results.records:
            problems.append(("empty", (f"{_name(results, side)} has no records: nothing was measured, so there is "
                                       "nothing to compare; check the run selected devices and budgeted pairs")))
            continue
        if not results.run.complete and (check_new_run or not is_new):
            problems.append(("incomplete", (f"{_name(results, side)} did not finish (complete: false — killed, "
                                            "interrupted or timed out): rerun it to the end")))
        failed = sorted({r.test or r.pair for r in results.records if r.outcome == "failed"})
        if failed and (check_new_run or not is_new):
            shown = listed(failed)
            problems.append(("failed-tests", (f"{_name(results, side)} holds records of {len(failed)} failed "
                                              f"test(s): {shown}; fix them or rerun before comparing")))
        # The run's own too, inside pytest: its tests passed, yet the gate cannot tell which value to compare.
        problems += [("duplicates", f"{_name(results, side)}: {text}") for text in recorded_twice(results)]
    if new is not None:
        for results in baseline:
            problems += [("model-changed", text) for text in model_changes_in_aa(results, new)]
    return [InputProblem(kind, text, kind not in allow) for kind, text in problems]


def recorded_twice(results: ResultsFile) -> list[str]:
    """Each pair × metric recorded by several tests with different values (an A/B record and a plain
    one are different measurements); equal values (one figure recorded by two tests) are none."""
    by_key: dict[tuple[bool, str, str], list[ResultRecord]] = {}
    for r in results.records:
        by_key.setdefault((paired_rounds(r) is not None, r.pair, r.metric), []).append(r)
    texts = []
    for (_, pair, metric), records in by_key.items():
        if len({(None if math.isnan(r.value) else r.value, tuple(r.raw or ())) for r in records}) > 1:
            shown = ", ".join(f"{r.test or '?'} = {r.value:.4g}" for r in records[:3])
            more = f" and {len(records) - 3} more" if len(records) > 3 else ""
            texts.append(f"{pair} {metric} recorded {len(records)} times with different values ({shown}{more}): "
                         f"the gate compares one value per pair × metric; record each under a name of its own "
                         f"(e.g. {metric}_<split>), or allow duplicates to compare each test's value with the same test's in the "
                         f"baseline{_repeat_hint(records)}")
    return texts


def _repeat_hint(records: list[ResultRecord]) -> str:
    """Why the same test recorded several times, when its ids are pytest-repeat's."""
    if all(r.test and REPEAT_ID.search(r.test) for r in records):
        return (" (these are pytest-repeat's `--count` repeats of one test: each records its own value; take "
                "more rounds inside the test for more samples, or run without --count)")
    return ""


def model_changes_in_aa(base: ResultsFile, new: ResultsFile) -> list[str]:
    """Pairs whose model SHA-256 differs although both runs are of the same clean commit (an A/A run)."""
    a, b = base.run, new.run
    if not (a.git_commit and a.git_commit == b.git_commit and not a.git_dirty and not b.git_dirty):
        return []

    def shas(results: ResultsFile) -> dict[str, str]:
        return {r.pair: str((r.context or {}).get("model_sha256")) for r in results.records
                if (r.context or {}).get("model_sha256") and paired_rounds(r) is None}

    before, after = shas(base), shas(new)
    return [f"{pair}: both runs are of commit {a.git_commit[:12]}, yet the model changed {before[pair][:12]} → "
            f"{after[pair][:12]}: an A/A comparison of different models; rebuild from the commit, or compare "
            "as a change" for pair in sorted(before.keys() & after.keys()) if before[pair] != after[pair]]
