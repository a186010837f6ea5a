"""The `edgehil` command line: `edgehil inspect MODEL.tflite [--json] [--input-shape N,H,W,C]`, and room for more subcommands.

Each subcommand is one `add_*_command(subparsers)` function that registers its parser and sets
`handler` (a function `argparse.Namespace -> int`); to add one (`compare`, `report`), write such a
function and append it to `COMMANDS`. Errors the package raises on purpose (`EdgeHILError`) are printed
as one line on stderr with exit status 2; usage errors exit 2 as argparse does; any other exception (a
bug) prints its traceback and exits 2 too, since 1 is `compare`'s "regression" verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_edgehil.agent.cli import add_agent_command
from pytest_edgehil.cli_sim import add_sim_command
from pytest_edgehil.errors import EdgeHILError
from pytest_edgehil.results.history_cli import add_history_command
from pytest_edgehil.results.report import add_report_command
from pytest_edgehil.starter import add_init_command

if TYPE_CHECKING:
    from pytest_edgehil.model.info import ModelInfo

EXIT_OK = 0
EXIT_REGRESSION = 1  # `compare`: the merge gate blocks
EXIT_ERROR = 2

_SubParsers = Any  # argparse's _SubParsersAction is private; typed loosely on purpose


def human_count(value: float) -> str:
    """1179648 -> '1.18 M'; small counts stay exact ('640')."""
    magnitude = abs(value)
    if magnitude < 1000:
        return f"{value:g}"
    for unit, scale in (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        if magnitude < scale * 1000 or unit == "T":
            return f"{value / scale:.3g} {unit}" if value / scale < 100 else f"{value / scale:.0f} {unit}"
    raise AssertionError("unreachable")


def human_bytes(size: int) -> str:
    """24576 -> '24.0 KiB' (binary units: device RAM and flash are specified that way)."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024.0
        if value < 1024.0 or unit == "GiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _cost_lines(info: ModelInfo) -> list[str]:
    if info.cost is None:
        # The file's 1x1 placeholders are not the model's cost: name what is open and how to close it.
        hint = " --input-shape ".join(",".join(str(d) if d >= 0 else "NHW"[i] if i < 3 else "?"
                                               for i, d in enumerate(sig)) for sig in info.dynamic_inputs.values())
        return [f"dynamic shape    {info.dynamic_text()}",
                "MACs/inference   depends on the input size: give --input-shape " + hint,
                "elementwise ops  depend on the input size: give --input-shape " + hint,
                "peak activation  depends on the input size: give --input-shape " + hint]
    lines = []
    if info.dynamic_inputs:
        shapes = "; ".join(f"{list(s.shape)}" for s in info.inputs)
        lines.append(f"dynamic shape    {info.dynamic_text()}; figures below at input {shapes}")
    # An op whose work is unknown (a WHILE body's trip count, a custom op) counts 0: the total is only a floor.
    floor = f"; a lower bound: {', '.join(info.unknown_ops)} not counted" if info.unknown_ops else ""
    return lines + [
        f"MACs/inference   {human_count(info.macs)} ({info.macs:,}) multiply-accumulates of conv/matmul ops{floor}",
        (f"elementwise ops  {human_count(info.elementwise_ops)} ({info.elementwise_ops:,}) elements touched by "
         "activations, adds, pooling, resizes, quantize, copies (not MACs)"),
        (f"peak activation  {human_bytes(info.peak_activation_bytes)} ({info.peak_activation_bytes:,} bytes; "
         f"lower bound on the tensor arena)"),
    ]


def _compute_line(info: ModelInfo) -> str:
    line = f"compute          {info.compute_dtype} (dtype of the conv/matmul activations and weights)"
    io_dtypes = sorted({np.dtype(s.dtype).name for s in (*info.inputs, *info.outputs)})
    if info.compute_dtype != "none" and io_dtypes and io_dtypes != [info.compute_dtype]:
        line += f"; I/O {'/'.join(io_dtypes)}, converted at the graph's edges"
    return line


def format_model_info(info: ModelInfo, source: str | None = None) -> str:
    """The human-readable `inspect` report."""
    lines = [
        f"model            {info.name}" + (f"  ({source})" if source and source != info.name else ""),
        f"size             {human_bytes(info.size_bytes)} ({info.size_bytes:,} bytes)",
        f"sha256           {info.sha256}",
        f"parameters       {human_count(info.parameters)} ({info.parameters:,}), weights {info.weight_dtype}",
        _compute_line(info),
        *_cost_lines(info),
        *(f"note             {note}" for note in info.notes),  # a batch taken as 1, shapes taken from LiteRT
    ]
    for title, specs in (("inputs", info.inputs), ("outputs", info.outputs)):
        lines.append(f"{title}:")
        for spec in specs:
            quant = f"scale={spec.scale:.6g} zero_point={spec.zero_point}" if spec.quantized else "not quantized"
            dynamic = {**info.dynamic_inputs, **info.dynamic_outputs}
            shape = list(dynamic.get(spec.name, spec.shape)) if info.cost is None else list(spec.shape)
            lines.append(f"  {np.dtype(spec.dtype).name:<8} {shape!s:<20} {quant:<36} {spec.name}")
    lines.append("ops:")
    width = max((len(name) for name in info.op_counts), default=0)
    macs_by_op = info.cost.macs_by_op if info.cost else {}
    elementwise_by_op = info.cost.elementwise_by_op if info.cost else {}
    order = sorted(info.op_counts.items(), key=lambda kv: (-macs_by_op.get(kv[0], 0),
                                                           -elementwise_by_op.get(kv[0], 0), kv[0]))
    for name, count in order:
        if name in info.unknown_ops:
            cost = "cost unknown (counted as 0)"
        elif info.cost is None:
            cost = "cost depends on the input size"
        elif macs_by_op.get(name, 0) or not elementwise_by_op.get(name, 0):
            macs = macs_by_op.get(name, 0)
            share = 100.0 * macs / info.macs if info.macs else 0.0
            cost = f"{human_count(macs):>9} MACs        {share:5.1f} %"
        else:
            ops = elementwise_by_op[name]
            share = 100.0 * ops / info.elementwise_ops
            cost = f"{human_count(ops):>9} elementwise {share:5.1f} %"
        lines.append(f"  {name:<{width}} x{count:<4} {cost}")
    if info.unknown_ops:
        lines.append(f"unknown ops (in neither the MAC nor the elementwise count): {', '.join(info.unknown_ops)}")
    return "\n".join(lines)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape: give positive integers like 1,32,32,3")
    return shape


def _run_inspect(args: argparse.Namespace) -> int:
    path = Path(args.model)
    from pytest_edgehil.model.info import analyze_model  # LiteRT's schema: `inspect` only, not every command

    shapes = args.input_shape or None
    model: bytes | Path = path
    if path.with_suffix(".json").is_file():
        # The card beside the file gives the size the suites measure a dynamic model at: the same here.
        # Its bytes are read through the catalog, which refuses a file the card's sha256 does not describe.
        from pytest_edgehil.config.catalog import ModelCatalog

        entry = ModelCatalog(path.parent).get(str(path))
        model, shapes = entry.data, shapes or entry.input_shapes
    info = analyze_model(model, name=path.stem, input_shapes=shapes)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print(format_model_info(info, source=str(path)))
    return EXIT_OK


def add_inspect_command(subparsers: _SubParsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="static analysis of a .tflite model (size, parameters, MACs, elementwise ops, "
                                "peak activation)",
        description="Print a .tflite model's size, sha256, parameters, compute dtype, MACs per inference "
                    "(conv/matmul multiply-accumulates), elementwise ops per inference (elements touched by "
                    "activations, adds, pooling, resizes, copies; a separate figure), peak activation memory, input/output tensors and operator histogram, without running it. A "
                    "model with dynamic input dimensions (shape_signature -1) has no single cost: give "
                    "--input-shape to analyse it at the size you feed.")
    parser.add_argument("model", metavar="MODEL.tflite", help="path to the model file")
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")
    parser.add_argument("--input-shape", type=_parse_shape, action="append", metavar="N,H,W,C",
                        help="analyse at this input shape (once per input, in order), e.g. 1,32,32,3; "
                             "needed for the MACs of a model with dynamic height/width")
    parser.set_defaults(handler=_run_inspect)


def _run_compare(args: argparse.Namespace) -> int:
    # Imported here: the gate pulls in scipy, which `inspect` does not need.
    from pytest_edgehil.results.gate import FailOn, compare_sessions
    from pytest_edgehil.results.gate_inputs import baseline_sessions, check_inputs, parse_allow
    from pytest_edgehil.results.history_cli import open_for_command
    from pytest_edgehil.results.session_stats import parse_drift
    from pytest_edgehil.results.store import load_results

    fail_on = FailOn.parse(args.fail_on, option="--fail-on")
    allow = parse_allow(args.allow, option="--allow")
    drift = parse_drift(args.session_drift, "--session-drift")
    unfinished: list[str] = []
    with open_for_command(args.history) as history:
        # NEW first: saved into the baseline's directory, it is left out of its own baseline.
        if history is None:
            new = load_results(args.new)
            sessions, left_out = baseline_sessions(args.base, leave_out=new, notes=unfinished)
        else:
            # Through the store: a file it holds is not read again. A baseline file it lacks is imported;
            # NEW is not: a candidate (a branch, a PR) is not history until pytest or a report adds it.
            new = history.load_file(args.new, traces=False, add=False)
            sessions, left_out = baseline_sessions(args.base, read=lambda p: history.load_file(p, traces=False),
                                                   leave_out=new, notes=unfinished)
    report = compare_sessions([s.records for s in sessions], new.records, fail_on, base_run=sessions[-1].run,
                              new_run=new.run, assumed_drift_rel=drift,
                              base_sources=[str(s.path or "") for s in sessions])
    skipped = [(f"{', '.join(p.name for p in left_out)} in {args.base} is the run under test (run id "
                f"{new.run.run_id or '?'}): left out of the baseline, compared with the other {len(sessions)} "
                "session(s)")] if left_out else []
    report = dataclasses.replace(report, inputs=tuple(check_inputs(sessions, new, allow)),
                                 run_flags=(*skipped, *unfinished, *report.run_flags))
    if args.json:
        from pytest_edgehil.results.document_text import finite_or_null

        # Strict JSON: a ratio from zero is +inf, a missing one NaN; jq and browsers reject those tokens.
        print(json.dumps(finite_or_null(report.to_json_dict()), indent=2, allow_nan=False))
    else:
        base = sessions[-1]
        count = f"{len(sessions)} sessions, latest " if len(sessions) > 1 else ""
        print(f"baseline {args.base} ({count}{base.run.backend}, {base.run.git_commit or 'no commit'}, "
              f"{base.run.started_at})")
        print(f"new      {args.new} ({new.run.backend}, {new.run.git_commit or 'no commit'}, {new.run.started_at})")
        print("\n".join(report.table_lines() + report.detail_lines() + [report.headline()]))
    return EXIT_OK if report.passed else EXIT_REGRESSION


def add_compare_command(subparsers: _SubParsers) -> None:
    from pytest_edgehil.results.gate import DEFAULT_FAIL_ON

    parser = subparsers.add_parser(
        "compare", help="compare two results files: the merge gate outside pytest",
        description="Compare every model x device x metric of NEW with BASE (results files written by "
                    "pytest --edgehil-save). Exit status: 0 no blocking regression, 1 a blocking regression, "
                    "2 an error (unreadable file, bad option).")
    parser.add_argument("base", metavar="BASE", help="baseline: a results file (one session), or a directory of "
                                                     "them (one per session; >= 5 let the gate measure the "
                                                     "between-session drift)")
    parser.add_argument("new", metavar="NEW", help="results file of the change under test")
    from pytest_edgehil.results.vocabulary import Family

    # argparse %-formats help texts (for %(default)s): a literal % must be written %%.
    parser.add_argument("--fail-on", default=DEFAULT_FAIL_ON, metavar="FAMILY:PCT,…",
                        help=f"regressions that fail (default {DEFAULT_FAIL_ON.replace('%', '%%')}); families: "
                             f"{', '.join(f.value for f in Family)}; add 'missing' or 'unknown' to make those "
                             "verdicts fail too")
    parser.add_argument("--allow", default="", metavar="KIND,…",
                        help="input problems that do not fail the comparison: incomplete (a run that did not "
                             "finish), empty (no records), failed-tests (records of failed tests), "
                             "model-changed (an A/A comparison whose model SHA-256 differs), duplicates (a pair's "
                             "metric recorded by several tests with different values: the first is compared)")
    parser.add_argument("--session-drift", default="1.5%", metavar="PCT",
                        help="between-session drift σ assumed when BASE holds one session (default 1.5%%)")
    parser.add_argument("--history", metavar="PATH|off", default=None,
                        help="history store to read BASE and NEW through: files it holds are not read again, "
                             "BASE files it lacks are imported, NEW is not (default $EDGEHIL_HISTORY, else "
                             "./edgehil-history.sqlite when it exists; 'off': read the files only)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(handler=_run_compare)


COMMANDS: list[Callable[[_SubParsers], None]] = [add_inspect_command, add_report_command, add_compare_command,
                                                  add_init_command, add_sim_command, add_agent_command,
                                                  add_history_command]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgehil", description="pytest-edgehil command line tools")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help: return the status instead of exiting
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print("edgehil: error: name a command, e.g. 'edgehil inspect MODEL.tflite'", file=sys.stderr)
        return EXIT_ERROR
    try:
        return int(handler(args))
    except EdgeHILError as exc:
        print(f"edgehil {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception:  # noqa: BLE001 - a bug, not a verdict: Python's own exit status 1 would read as "regression" in CI
        traceback.print_exc()
        print(f"edgehil {args.command}: internal error (a bug in pytest-edgehil: please report the traceback "
              "above); exit status 2, not a verdict", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
