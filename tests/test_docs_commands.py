"""Every ``facenet-keras ...`` and ``style-transfer ...`` command line in the README and docs/*.md
names sub-commands and options that exist: each line is walked through the real argparse parsers,
in-process (no subprocess per line)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
PROGRAMS = ("facenet-keras", "style-transfer")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from facenet_keras.cli import build_parser
    from style_transfer.cli import _parser

    return {"facenet-keras": build_parser(), "style-transfer": _parser()}


def command_lines(text: str) -> list[str]:
    """The command lines in a Markdown text's fenced code blocks (continuations joined, comments cut)."""
    lines = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip().removeprefix("$ ")
            words = line.split()
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value before the command
                words.pop(0)
            if words and words[0] in PROGRAMS:
                lines.append(" ".join(words))
    return lines


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def problems(line: str, parsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    """What in one command line does not exist: an unknown sub-command or option, by its parser."""
    words = shlex.split(line.replace("[", " ").replace("]", " "))
    program, words = words[0], words[1:]
    out = []
    # "gallery list | rename OLD NEW | remove NAME": alternatives after '|' are siblings of the first
    segments, current = [], []
    for w in words:
        if w == "|":
            segments.append(current)
            current = []
        else:
            current.append(w)
    segments.append(current)
    path: list[argparse.ArgumentParser] = []
    for n, segment in enumerate(segments):
        parser = parsers[program] if n == 0 or len(path) < 2 else path[-2]
        chain, skip = [parser], 0
        for i, w in enumerate(segment):
            if skip:  # an option's value
                skip -= 1
                continue
            if w.startswith("-") and len(w) > 1 and not re.fullmatch(r"-\d.*", w):
                name, _, value = w.partition("=")
                action = parser._option_string_actions.get(name)
                if action is None:
                    out.append(f"{line!r}: {parser.prog} has no option {name}")
                elif not value and action.nargs != 0:
                    skip = action.nargs if isinstance(action.nargs, int) else 1
                continue
            sub = _subparsers(parser)
            if sub:
                if w not in sub:
                    out.append(f"{line!r}: {parser.prog} has no sub-command {w}")
                    break
                parser = sub[w]
                chain.append(parser)
        if n == 0:
            path = chain
    return out


def test_the_docs_name_commands():
    lines = [line for doc in DOCS for line in command_lines(doc.read_text())]
    assert len(lines) >= 40, f"only {len(lines)} command lines found: is the parser still reading the docs?"
    assert any(line.startswith("style-transfer") for line in lines)


@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_every_command_and_option_exists(doc):
    parsers = _parsers()
    found = [p for line in command_lines(doc.read_text()) for p in problems(line, parsers)]
    assert not found, "\n".join(found)


def test_a_bogus_option_or_command_is_caught():
    parsers = _parsers()
    text = "```bash\nfacenet-keras verify probe.jpg Grace --no-such-option\n"
    text += "style-transfer a.jpg b.jpg --fastest -o o.png\n"
    text += "facenet-keras gallery list | rename A B | erase NAME\nfacenet-keras enrol Grace g.jpg\n```\n"
    found = [p for line in command_lines(text) for p in problems(line, parsers)]
    assert len(found) == 4, found
    assert "no option --no-such-option" in found[0] and "no option --fastest" in found[1]
    assert "no sub-command erase" in found[2] and "no sub-command enrol" in found[3]


def test_the_changelog_and_the_docs_speak_of_this_version():
    """pyproject's version is the changelog's latest release, and no page names a later one."""
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert releases and releases[0] == version
    key = tuple(int(x) for x in version.split("."))
    for doc in DOCS:
        for named in re.findall(r"facenet-keras (\d+\.\d+(?:\.\d+)?)", doc.read_text()):
            assert tuple(int(x) for x in named.split(".")) <= key, f"{doc.name} names facenet-keras {named}"


def test_every_sub_command_is_documented():
    """Each ``facenet-keras`` sub-command appears in a command line of the docs (and so is checked above)."""
    parser = _parsers()["facenet-keras"]
    documented = set()
    for doc in DOCS:
        for line in command_lines(doc.read_text()):
            words = [w for w in shlex.split(line.replace("[", " ").replace("]", " ")) if not w.startswith("-")]
            documented.update(words[1:3])
    missing = sorted(set(_subparsers(parser)) - documented)
    assert not missing, f"sub-commands no docs page shows: {missing}"
