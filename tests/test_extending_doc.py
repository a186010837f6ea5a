"""docs/extending.md, followed literally: its file blocks written, its commands run, its output lines matched.

The doc's conventions, which this test reads: a ```toml block whose first line is `# file: PATH` is
written to PATH, one whose first line is `# append to: PATH` is appended to it; a ```console block holds
`$ COMMAND` lines, each followed by lines the command's output must contain (`…` matches anything). The
one substitution: `path/to/my_net.tflite` is the shipped TinyTracker model, standing in for the reader's.
pytest runs in a subprocess, as a reader's shell would: the kinds and twins a lab file registers stay in
that process.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from pytest_edgehil.cli import main

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "extending.md"
STAND_IN = {"path/to/my_net.tflite": str(REPO / "fixtures" / "models" / "tinytracker.tflite")}
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def doc_steps(text: str) -> list[tuple[str, str, list[str]]]:
    """(action, argument, expected lines) in the doc's order: ("write"|"append", PATH, [content]),
    ("run", COMMAND, [expected output lines])."""
    steps: list[tuple[str, str, list[str]]] = []
    for lang, body in _BLOCK.findall(text):
        lines = body.rstrip("\n").split("\n")
        if lang == "toml" and (m := re.match(r"# (file|append to): (\S+)$", lines[0])):
            steps.append(("write" if m.group(1) == "file" else "append", m.group(2), ["\n".join(lines[1:]) + "\n"]))
        elif lang == "console":
            for line in lines:
                if line.startswith("$ "):
                    steps.append(("run", line[2:], []))
                elif line.strip():
                    steps[-1][2].append(line)
    return steps


def as_pattern(line: str) -> str:
    """An output line of the doc as an fnmatch pattern: `…` is anything, brackets are literal."""
    return "*" + line.replace("[", "[[]").replace("…", "*") + "*"


def test_the_doc_has_the_steps_this_test_follows() -> None:
    steps = doc_steps(DOC.read_text(encoding="utf-8"))
    runs = [arg for action, arg, _ in steps if action == "run"]
    assert runs[0] == "edgehil init" and any(r.startswith("cp path/to/my_net.tflite") for r in runs)
    assert sum(r.startswith("python -m pytest") for r in runs) == 2
    assert {arg for action, arg, _ in steps if action == "write"} >= {
        "fixtures/budgets.local.toml", "fixtures/my_kinds.toml", "fixtures/my_profiles.toml", "fixtures/lab.local.toml"}
    assert all(expected for action, arg, expected in steps if action == "run" and "pytest" in arg)


def test_a_newcomer_following_extending_md_adds_a_model_with_a_budget_and_a_board_kind(
        pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    project = pytester.path
    for action, arg, payload in doc_steps(DOC.read_text(encoding="utf-8")):
        if action in ("write", "append"):
            path = project / arg
            assert action == "write" or path.is_file(), f"the doc appends to {arg} before writing it"
            with path.open("a" if action == "append" else "w", encoding="utf-8") as out:
                out.write(payload[0])
            continue
        argv = shlex.split(arg)
        if argv[0] == "edgehil":
            assert main(argv[1:]) == 0, capsys.readouterr()
        elif argv[0] == "cp":
            shutil.copyfile(STAND_IN.get(argv[1], argv[1]), project / argv[2])
        else:
            assert argv[:3] == ["python", "-m", "pytest"], f"a command this test does not know: {arg}"
            result = pytester.runpytest_subprocess(*argv[3:], "-p", "no:cacheprovider")
            assert result.ret == 0, f"{arg}\n{result.stdout.str()[-3000:]}\n{result.stderr.str()[-2000:]}"
            result.stdout.fnmatch_lines([as_pattern(line) for line in payload])
            outcomes = result.parseoutcomes()
            assert outcomes.get("passed", 0) >= len(payload) and not outcomes.get("failed")
