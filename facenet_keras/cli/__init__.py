"""The ``facenet-keras`` command line: thin sub-commands that parse, call the API and print.

Each module in this package registers its sub-commands with ``register(subparsers)``; a handler
returns the process exit code. Exit codes scripts can rely on:
0 match / recognised / success, 1 no match / nobody recognised / no face, 2 bad input or usage
(unreadable photo, unknown person, unusable gallery, ...), 3 internal error (a bug: please report it).
Every failure is one line on stderr; the traceback only with ``--verbose`` or ``FACENET_KERAS_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sqlite3
import sys
import traceback
import unicodedata
from pathlib import Path

EXIT_OK, EXIT_NO_MATCH, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

# modules of this package that add sub-commands, in the order --help lists them
_COMMAND_MODULES = ("faces", "evaluate", "train", "library", "watch", "db", "serve")
# failures that are the input's or the environment's fault (exit 2), not a bug (exit 3)
_BAD_INPUT = (ValueError, LookupError, OSError, sqlite3.Error)


def build_parser() -> argparse.ArgumentParser:
    from facenet_keras import __version__

    parser = argparse.ArgumentParser(
        prog="facenet-keras",
        description="Face verification (1:1) and recognition (1:K) with pretrained FaceNet-style embeddings.",
        epilog="Exit codes: 0 match/recognised/success, 1 no match/nobody recognised, 2 bad input or usage, "
        "3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"facenet-keras {__version__}")
    parser.add_argument(
        "--gallery",
        metavar="PATH",
        default=None,
        help="gallery file (SQLite) for the commands that use one; default: $FACENET_KERAS_GALLERY "
        "or the user data folder",
    )
    _add_global_options(parser, default=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for command in _leaf_parsers(sub):  # the global options work after the command name too
        _add_global_options(command, default=False)
    return parser


def _leaf_parsers(sub) -> list[argparse.ArgumentParser]:
    out = []
    for parser in sub.choices.values():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        out += _leaf_parsers(nested[0]) if nested else [parser]
    return out


def _add_global_options(parser: argparse.ArgumentParser, default: bool) -> None:
    # Only the main parser sets defaults; a sub-parser's copy is suppressed unless given, so it
    # never overwrites a value given before the command name.
    # A command that defines one of these itself (evaluate's "--json [OUT.json]") keeps its own.
    keep = (lambda v: v) if default else (lambda v: argparse.SUPPRESS)
    have = parser._option_string_actions
    if "--json" not in have:
        parser.add_argument(
            "--json", action="store_true", default=keep(False), help="print machine-readable JSON instead of text"
        )
    if "--verbose" not in have:
        parser.add_argument(
            "--verbose",
            "-v",
            action="store_true",
            default=keep(False),
            help="on failure, print the traceback too (as FACENET_KERAS_DEBUG=1 does)",
        )


def gallery_option(parser: argparse.ArgumentParser) -> None:
    """Give a command the ``--gallery PATH`` option (only commands that use a gallery have it)."""
    parser.add_argument(
        "--gallery",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="gallery: a SQLite file, postgresql://..., milvus://host:port or a *.milvus.db; "
        "default: $FACENET_KERAS_GALLERY or the user data folder",
    )
    parser.set_defaults(uses_gallery=True)


def profile_option(parser: argparse.ArgumentParser) -> None:
    """Give a command that encodes faces the ``--profile fast|accurate`` option (see docs/model-cards.md)."""
    from facenet_keras.faces.profiles import PROFILES

    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="the encoders: fast (dlib's ResNet) or accurate (dlib's ResNet and SFace fused); "
        "default: the gallery's own, else fast. Not with --model",
    )


def resolve_profile(args) -> None:
    """``--profile`` becomes the encoder the command passes on as ``args.model`` (with --model: refused)."""
    if getattr(args, "profile", None) is not None:
        from facenet_keras.faces.profiles import encoder_choice

        args.model = encoder_choice(getattr(args, "model", None), args.profile)


def open_gallery(args, *, readonly: bool):
    """The gallery named by ``--gallery`` (or the default one); read-only commands never create it."""
    from facenet_keras.identity.gallery import FaceGallery

    return FaceGallery(args.gallery, readonly=readonly)


def emit(args, payload, lines: list[str]) -> None:
    """A command's answer: text lines on stdout, or the JSON ``payload`` with ``--json``; with
    ``--json OUT.json`` (commands that accept a path) the JSON goes to that file and the text to stdout."""
    target = getattr(args, "json", False)
    if isinstance(target, str):
        from facenet_keras.files import atomic_write

        out = Path(target)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out, "w", permissions=0o644) as f:
            f.write(json.dumps(payload, indent=2) + "\n")
        lines = lines + [f"figures written to {out}"]
    if target is True:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(line)


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"warning: {one_line(message)}", file=sys.stderr)


def one_line(message) -> str:
    """``message`` as one printable line: line breaks become ' | ', other control characters escaped."""
    text = " | ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in ("Cc", "Cf") else c for c in text
    )


def json_file_arguments(argv: list[str]) -> list[str]:
    """``--json`` takes an optional file only when it ends in ``.json`` or ``.jsonl`` (``watch``'s events), or
    with ``--json=FILE``: a
    bare ``--json`` followed by anything else (``evaluate --json pairs.csv``) is moved to the end of
    the command line, so it never swallows a positional argument."""
    argv = list(argv)
    stop = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:stop], argv[stop:]
    out, moved = [], False
    for i, token in enumerate(head):
        nxt = head[i + 1] if i + 1 < len(head) else None
        if (
            token == "--json"
            and nxt is not None
            and not nxt.startswith("-")
            and not nxt.lower().endswith((".json", ".jsonl"))
        ):
            moved = True
            continue
        out.append(token)
    return out + (["--json"] if moved else []) + tail


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


# Printed on a terminal when a command starts loading TensorFlow: start-up to the first answer took
# 8.7 s with an empty cache and 9.5 s with it filled (`compare`, 2 shared cores; 12-17 s under load).
LOADING_MESSAGE = "facenet-keras: loading the models (~10-15 s; the first run also converts the weights)"


def main(argv: list[str] | None = None) -> int:
    from facenet_keras import tf_env

    tf_env.configure()
    tf_env.announce_loading(LOADING_MESSAGE)
    argv = json_file_arguments(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors: argparse printed usage and the error (exit 2); --help/--version: 0
        return int(exc.code or 0)
    verbose = getattr(args, "verbose", False) or tf_env.debug_enabled()
    if args.gallery is not None and not getattr(args, "uses_gallery", False):
        print(f"facenet-keras: error: --gallery does nothing for '{args.command}'", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        resolve_profile(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _BAD_INPUT as exc:
        # bad input or an unusable environment (unreadable photo, no face, unknown person, locked
        # or read-only gallery, full disk): a clear message, exit 2
        if verbose:
            traceback.print_exc()
        print(f"facenet-keras: error: {one_line(_error_message(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: exit 3, so that no script reads it as "no match"
        if verbose:
            traceback.print_exc()
        print(
            f"facenet-keras: internal error: {type(exc).__name__}: {one_line(_error_message(exc))} "
            "(run with --verbose for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
