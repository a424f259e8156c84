"""The documentation's examples, run: every ```console block in README.md and docs/*.md.

A ```console block holds ``$ command`` lines, each followed by the output it prints (its
stdout). Each command runs with ``bash -o pipefail``, from the repository root, with this
interpreter's folder first on PATH (so ``paramlens`` and ``python`` are the ones under
test) and the result cache off, so each run builds its models. The output must equal what
the doc shows, line for line (trailing spaces aside), except that a line holding only
``...`` stands for any number of lines, and the checkout's own path is written
``/src/paramlens`` (the docs say so where it shows). Figures that differ between runs
(build times) are for the doc to leave out, with ``...`` or a filter; the comparison never
loosens. A command that fails fails its test: a doc that shows an exit code prints it
(``; echo "exit: $?"``). Commands shown without output belong in ```sh blocks.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "client" / "README.md"]
CHECKOUT = "/src/paramlens"  # how the docs write the repository's own path
SKIP = "..."
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


@dataclass(frozen=True)
class Example:
    doc: Path
    line: int  # 1-based, of the ``$`` line
    command: str
    expected: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def console_blocks(doc: Path) -> list[tuple[int, str]]:
    """(line of the block's first line, text) of each ```console block of ``doc``."""
    text = doc.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start(2)) + 1, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) == "console"
    ]


def examples_in(doc: Path) -> list[Example]:
    found: list[Example] = []
    for first, block in console_blocks(doc):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("$ "):
            raise ValueError(f"{doc.name}:{first}: a console block starts with a $ command")
        i = 0
        while i < len(lines):
            at = first + i
            command = lines[i][2:]
            while command.endswith("\\") and i + 1 < len(lines):  # a command over lines
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            i += 1
            output: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            found.append(Example(doc, at, command, tuple(output)))
    return found


EXAMPLES = [example for doc in DOCS if doc.exists() for example in examples_in(doc)]


def matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """``actual`` equals ``expected``, where a ``...`` line stands for any lines."""
    pattern = "".join(
        "(?:[^\n]*\n)*?" if line.strip() == SKIP else re.escape(line.rstrip()) + "\n"
        for line in expected
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def run(command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PARAMLENS_CACHE_DIR": "off",
    }
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def trimmed(lines: list[str] | tuple[str, ...]) -> list[str]:
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_console_example(example: Example) -> None:
    done = run(example.command)
    assert done.returncode == 0, (
        f"{example.name}: `{example.command}` exited {done.returncode}\n{done.stderr}"
    )
    actual = trimmed(done.stdout.replace(str(REPO), CHECKOUT).splitlines())
    expected = trimmed(example.expected)
    if not matches(tuple(expected), actual):
        diff = "\n".join(
            difflib.unified_diff(expected, actual, "the doc", "the command", lineterm="")
        )
        pytest.fail(f"{example.name}: `{example.command}` printed something else:\n{diff}")


def test_examples_found() -> None:
    """The collector itself: the README and the docs hold examples, each with a command."""
    docs = {e.doc.name for e in EXAMPLES}
    assert "README.md" in docs
    assert len({e.doc for e in EXAMPLES}) >= 3
    assert all(e.command.strip() for e in EXAMPLES)


def test_matcher() -> None:
    assert matches(("a", "...", "d"), ["a", "b", "c", "d"])
    assert matches(("a", "...", "b"), ["a", "b"])
    assert not matches(("a", "...", "d"), ["a", "b", "c", "e"])
    assert not matches(("a", "b"), ["a", "b", "c"])
    assert not matches(("a. b",), ["a1 b"])  # no regular expressions in the doc's text


def test_readme_is_short() -> None:
    assert (REPO / "README.md").stat().st_size <= 10 * 1024


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if d.exists()], ids=lambda d: str(d.relative_to(REPO))
)
def test_relative_links_exist(doc: Path) -> None:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    missing = [
        target
        for target in LINK.findall(text)
        if "://" not in target
        and not target.startswith("mailto:")
        and not (doc.parent / target).exists()
    ]
    assert not missing, f"{doc.relative_to(REPO)} links to missing files: {missing}"


def test_readme_commands_exist() -> None:
    """The two commands the README promises."""
    for script in ("scripts/demo.sh", "scripts/test.sh", "scripts/release-check.sh"):
        assert os.access(REPO / script, os.X_OK), script
