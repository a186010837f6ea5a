"""Which record the gate compares where a run holds one pair's metric more than once.

Two tests may record the same pair × metric. The footprint suite records `model_kib` from two tests with
equal values: one figure, compared once. Two tests with different values are two measurements (another
window, another loop): comparing "the first" let the record order decide, and that order is the order
tests finished in, which pytest-xdist changes from run to run. So such a pair × metric is keyed by test
(its pytest node id) on every side the gate reads, the baseline sessions included: each test's figure is
compared with the same test's in the baseline, a test the baseline lacks is NEW, one this run lacks is
MISSING, and each of these comparisons names its test (`Comparison.origin`).

A baseline record without a test id (a file written before records carried one, or a lab's own writer) in
such a pair × metric cannot be matched by test (`attach_untested`): when one test of this run records the
pair × metric it is taken as that test's, with a flag, unless other baseline sessions name another test
recording it (then it may be that test's figure: UNKNOWN, compared with none); when several do, which one the baseline measured
cannot be told, and the verdict is UNKNOWN naming them and asking for a new baseline (before, MISSING +
NEW + NEW said nothing of why). A test renamed or re-parametrized beside another test of its pair × metric
is MISSING under its old id and NEW under the new one: `note_renames` says so on the MISSING verdict, as
a regression under the new id is not compared.

Same-session A/B records (`paired_rounds`) are split off before this: the A/B gate judges them. A run
that holds both (an `--edgehil-ab` test beside the energy suite) has its energy suite's record compared
across sessions; that comparison names its test too, and a note says where the A/B record went.
No pytest, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from pytest_edgehil.results.comparison import Comparison, GateStatus, fmt, listed
from pytest_edgehil.results.records import paired_rounds
from pytest_edgehil.results.store import ResultRecord
from pytest_edgehil.results.vocabulary import current_name, lookup

# pytest-repeat's `--count N` ids a test's repeats "[1-3]", "[2-3]", ... (alone or after its parameters).
REPEAT_ID = re.compile(r"(?:\[|-)\d+-\d+\]$")


def test_of(record: ResultRecord) -> str:
    """The test a record comes from, a pytest-repeat repeat read as its test: `--count 3` measures one test
    three times, and keyed by "[…-1-3]" none of them matched the baseline's run without --count (the
    baseline's record went MISSING, the repeats NEW, and a +50 % passed)."""
    match = REPEAT_ID.search(record.test)
    if match is None:
        return record.test
    return record.test[:match.start()] + ("" if match.group().startswith("[") else "]")


# (pair, metric, test): test is "" unless the pair × metric is keyed by test (see the module's docstring).
Key = tuple[str, str, str]


def current(record: ResultRecord) -> ResultRecord:
    """The record under its metric's current name (a baseline from before a rename holds the same figure)."""
    name = current_name(record.metric)
    return record if name == record.metric else replace(record, metric=name, unit=lookup(name).unit)


def _differ(a: ResultRecord, b: ResultRecord) -> bool:
    return a.value != b.value or a.raw != b.raw


def _repeated_by_tests(records: Sequence[ResultRecord]) -> bool:
    """Whether one side's records of a pair × metric are two measurements: two tests, different figures."""
    return len(records) > 1 and len({test_of(r) for r in records}) > 1 and any(_differ(records[0], r) for r in records[1:])


def index_sides(sides: Sequence[Iterable[ResultRecord]], names: Sequence[str]) -> tuple[list[dict[Key, ResultRecord]], list[str]]:
    """Each side's records (A/B records removed by the caller) by `Key`, and notes on what was not compared.

    `names` says each side in notes ("baseline", "this run"). A pair × metric that any side holds from two
    tests with different figures is keyed by test on every side; otherwise the test part is "" and the
    first record counts (a later one with another figure is named in a note: one test recorded it twice)."""
    grouped: list[dict[tuple[str, str], list[ResultRecord]]] = []
    for records in sides:
        table: dict[tuple[str, str], list[ResultRecord]] = {}
        for record in records:
            record = current(record)
            key = (record.pair, record.metric)
            if key in table:
                table[key].append(record)
            else:
                table[key] = [record]
        grouped.append(table)
    by_test = {key for table in grouped for key, records in table.items() if _repeated_by_tests(records)}
    indexed: list[dict[Key, ResultRecord]] = []
    notes = [f"{pair} {metric} is recorded by more than one test with different values: each test's figure is "
             "compared with the same test's in the baseline" for pair, metric in sorted(by_test)]
    for table, side in zip(grouped, names):
        index: dict[Key, ResultRecord] = {}
        for (pair, metric), records in table.items():
            split = (pair, metric) in by_test
            if len(records) == 1 and not split:  # the common case (a night of 5,000 records): nothing to note
                index[(pair, metric, "")] = records[0]
                continue
            for record in records:
                first = index.setdefault((pair, metric, test_of(record) if split else ""), record)
                if first is not record and _differ(first, record):
                    notes.append(f"{side}: {pair} {metric} recorded twice with different values ({first.test or '?'} "
                                 f"and {record.test or '?'}); compared the first")
        indexed.append(index)
    return indexed, notes


def split_ab(records: Iterable[ResultRecord]) -> tuple[list[ResultRecord], list[ResultRecord]]:
    """(plain records, same-session A/B records): one `paired_rounds` per record."""
    plain: list[ResultRecord] = []
    ab: list[ResultRecord] = []
    for record in records:
        (plain if paired_rounds(record) is None else ab).append(record)
    return plain, ab


def ab_notes(sides: Sequence[Iterable[ResultRecord]], names: Sequence[str]) -> tuple[set[tuple[str, str]], list[str]]:
    """The pair × metrics of each side's A/B records (`split_ab`), which the cross-session gate leaves to
    the A/B gate, and one note per side that held any, naming them."""
    keys: set[tuple[str, str]] = set()
    notes = []
    for records, side in zip(sides, names):
        ab = sorted({(r.test, r.pair, current_name(r.metric)) for r in records})
        if ab:
            keys |= {(pair, metric) for _, pair, metric in ab}
            what = "; ".join(f"{pair} {metric} from {test or '?'}" for test, pair, metric in ab)
            notes.append(f"{side}: same-session A/B records ({what}) are judged by the A/B gate (--edgehil-ab), "
                         "not against the baseline")
    return keys, notes


def _files(names: Iterable[str]) -> str:
    """" in a.json, b.json": where the baseline's records are, for messages; "" when no file is known."""
    names = [n for n in names if n]
    return f" in {listed(names)}" if names else ""


def attach_untested(sessions: Sequence[dict[Key, ResultRecord]], new_by_key: dict[Key, ResultRecord],
                    sources: Sequence[str]) -> tuple[dict[Key, tuple[str]], dict[tuple[str, str], str]]:
    """Baseline records keyed (pair, metric, "") although this run keys that pair × metric by test: their
    files carry no test id. With one test of this run recording it, each session's record is moved to that
    test's key (in `sessions`, in place) and the flags for it are returned by key; with several, a note for an
    UNKNOWN verdict by (pair, metric). `sources` names each session's file."""
    candidates: dict[tuple[str, str], list[str]] = {}
    for pair, metric, test in new_by_key:
        if test:
            candidates.setdefault((pair, metric), []).append(test)
    flags: dict[Key, tuple[str]] = {}
    unknown: dict[tuple[str, str], str] = {}
    for (pair, metric), tests in candidates.items():
        untested = [(by_key, name) for by_key, name in zip(sessions, sources) if (pair, metric, "") in by_key]
        if not untested:
            continue
        files = _files(name for _, name in untested)
        # Tests the baseline's other sessions name for it: a second one there means the id-less record may be
        # its figure, not this run's one test's (which then is compared with the sessions that name it).
        named = sorted({key[2] for by_key in sessions for key in by_key if key[:2] == (pair, metric) and key[2]})
        others = [test for test in named if test not in tests]
        if len(tests) == 1 and others:
            unknown[(pair, metric)] = (f"the baseline's record{files} carries no test id, and other baseline sessions "
                                       f"record {pair} {metric} from {len(named)} tests ({', '.join(named)}): which "
                                       "one it measured cannot be told, so it is compared with none; re-baseline "
                                       "with this version of pytest-edgehil (it records each test's id)")
            continue
        if len(tests) == 1:
            key = (pair, metric, tests[0])
            for by_key, _ in untested:
                if key not in by_key:  # a session holding both keeps its own test's record
                    by_key[key] = by_key.pop((pair, metric, ""))
            text = f"baseline record{files} has no test id: taken as this test's, the only one of this run recording it"
            flags[key] = (text,)
            continue
        shown = ", ".join(f"{test} = {fmt(r.value)}{f' {r.unit}' if r.unit else ''}"
                          for test in sorted(tests) for r in [new_by_key[(pair, metric, test)]])
        unknown[(pair, metric)] = (f"the baseline's record{files} carries no test id (written before records carried "
                                   f"one, or by another writer), and this run has {len(tests)} tests recording it "
                                   f"({shown}): which one the baseline measured cannot be told; re-baseline with "
                                   "this version of pytest-edgehil (it records each test's id)")
    return flags, unknown


def note_renames(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """A MISSING test beside NEW tests of its pair × metric: a rename or a new parametrization, whose figure
    is then compared with nothing (neither verdict blocks by default). The MISSING verdict says so."""
    new_tests: dict[tuple[str, str], list[str]] = {}
    for c in comparisons:
        if c.status is GateStatus.NEW and c.origin:
            new_tests.setdefault((c.pair, c.metric), []).append(c.origin)
    noted = []
    for c in comparisons:
        tests = new_tests.get((c.pair, c.metric))
        if c.status is GateStatus.MISSING and c.origin and tests:
            text = (f"renamed? this run has {', '.join(tests)} recording {c.pair} {c.metric}, which the baseline "
                    "lacks, so neither is compared: if it is this test, rename it back or re-baseline")
            c = replace(c, note="; ".join(filter(None, [c.note, text])))
        noted.append(c)
    return noted
