"""Sub-commands for shared galleries: ``db start`` / ``db stop`` (a local PostgreSQL + pgvector
server) and ``gallery export`` / ``gallery import`` (move a gallery between backends)."""

from __future__ import annotations

import argparse

from . import EXIT_NO_MATCH, EXIT_OK, _add_global_options, emit, gallery_option, open_gallery


def register(sub) -> None:
    p = sub.add_parser("db", help="a local PostgreSQL + pgvector server for a shared gallery (start / stop)")
    dsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, helptext, func in (
        ("start", "start the server (created the first time) and print its gallery URL", cmd_db_start),
        ("stop", "stop the server (exit 1 if it was not running)", cmd_db_stop),
    ):
        a = dsub.add_parser(action, help=helptext)
        a.add_argument(
            "--data",
            metavar="DIR",
            default=None,
            help="the server's one folder (default: $FACENET_KERAS_PG_DATA, else "
            "/var/lib/facenet-keras/postgres as root, ~/.local/share/facenet-keras/postgres otherwise)",
        )
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        a.set_defaults(func=func)

    gallery = _subcommands(sub.choices["gallery"])
    e = gallery.add_parser(
        "export",
        help="write the gallery to FILE (embeddings, names, photo hashes, "
        "face crops, embedding space, threshold), to import into any backend",
    )
    e.add_argument("file", metavar="FILE", help="the export file to write (JSON, private)")
    e.set_defaults(func=cmd_export)
    i = gallery.add_parser(
        "import",
        help="add the people of an exported FILE to the gallery (no re-encoding; photos already there are skipped)",
    )
    i.add_argument("file", metavar="FILE", help="a file written by 'gallery export'")
    i.set_defaults(func=cmd_import)
    for action in (e, i):
        gallery_option(action)
        _add_global_options(action, default=False)


def _subcommands(parser: argparse.ArgumentParser):
    """The sub-parsers object of a command that has actions (``gallery``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError(f"{parser.prog} has no actions")


def cmd_db_start(args) -> int:
    from facenet_keras.identity.stores.pg_local import LocalPostgres

    server = LocalPostgres(args.data)
    was_running = server.running()
    url = server.start()
    emit(
        args,
        {"url": url, "data": str(server.dir), "already_running": was_running},
        [
            url,
            (
                f"{'already running' if was_running else 'started'}: PostgreSQL + pgvector with its data in "
                f"{server.dir}; use the URL above as --gallery or FACENET_KERAS_GALLERY "
                "(it holds the password: keep it private)"
            ),
        ],
    )
    return EXIT_OK


def cmd_db_stop(args) -> int:
    from facenet_keras.identity.stores.pg_local import LocalPostgres

    server = LocalPostgres(args.data)
    stopped = server.stop()
    emit(
        args,
        {"stopped": stopped, "data": str(server.dir)},
        [f"stopped the PostgreSQL server in {server.dir}" if stopped else f"no server was running in {server.dir}"],
    )
    return EXIT_OK if stopped else EXIT_NO_MATCH


def cmd_export(args) -> int:
    from facenet_keras.identity.portable import export_gallery

    with open_gallery(args, readonly=True) as g:
        summary = export_gallery(g, args.file)
        emit(
            args,
            {"gallery": str(g.path), **summary},
            [f"exported {summary['people']} people, {summary['photos']} photos from {g.path} to {args.file}"],
        )
    return EXIT_OK


def cmd_import(args) -> int:
    from facenet_keras.identity.portable import import_gallery

    with open_gallery(args, readonly=False) as g:
        summary = import_gallery(g, args.file)
        emit(
            args,
            {"gallery": str(g.path), **summary},
            [
                (
                    f"imported {summary['people']} people into {g.path}: {summary['added']} photos added, "
                    f"{summary['skipped']} already there"
                )
            ],
        )
    return EXIT_OK
