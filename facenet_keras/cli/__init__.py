"""The ``facenet-keras`` command line: thin sub-commands that parse, call the API and print.

Each module in this package registers its sub-commands with ``register(subparsers)``; a handler
returns the process exit code. Exit codes scripts can rely on:
0 match / recognised / success, 1 no match / not recognised, 2 bad input or usage.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_NO_MATCH, EXIT_BAD_INPUT = 0, 1, 2

# modules of this package that add sub-commands, in the order --help lists them
_COMMAND_MODULES = ("faces", "evaluate", "train", "watch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facenet-keras",
        description="Face verification (1:1) and recognition (1:K) with pretrained FaceNet-style embeddings.",
    )
    _add_global_options(parser, default=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    for command in sub.choices.values():  # the global options work after the command name too
        _add_global_options(command, default=False)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, default: bool) -> None:
    # Only the main parser sets defaults; a sub-parser's copy is suppressed unless given, so it
    # never overwrites a value given before the command name.
    # A command that defines one of these itself (evaluate's "--json [OUT.json]") keeps its own.
    keep = (lambda v: v) if default else (lambda v: argparse.SUPPRESS)
    have = parser._option_string_actions
    if "--gallery" not in have:
        parser.add_argument("--gallery", metavar="PATH", default=keep(None),
                            help="gallery file (SQLite); default: $FACENET_KERAS_GALLERY or the user data folder")
    if "--json" not in have:
        parser.add_argument("--json", action="store_true", default=keep(False),
                            help="print machine-readable JSON instead of text")


def emit(args, payload, lines: list[str]) -> None:
    """A command's answer: text lines on stdout, or the JSON ``payload`` with ``--json``; with
    ``--json OUT.json`` (commands that accept a path) the JSON goes to that file and the text to stdout."""
    target = getattr(args, "json", False)
    if isinstance(target, str):
        out = Path(target)
        if out.parent != Path(""):
            out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")
        lines = lines + [f"figures written to {out}"]
    if target is True:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(line)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError, LookupError) as exc:
        # Bad input (unreadable image, no face, unknown identity, wrong file): a clear message, exit 2.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"facenet-keras: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
