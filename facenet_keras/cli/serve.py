"""``facenet-keras serve`` (the REST service and its web page) and ``facenet-keras keys`` (API keys)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile

from . import EXIT_BAD_INPUT, EXIT_OK, emit, gallery_option, profile_option

# Gallery URL schemes whose store several processes can share (a server, not a file).
SHARED_SCHEMES = ("postgresql", "postgres", "milvus")

# serve's limits on slow and idle clients and on key guessing: (flag, Settings field, metavar, help);
# their defaults are the Settings' own
LIMIT_OPTIONS = [
    ("--header-timeout", "header_timeout_s", "S", "seconds to send a request's headers"),
    ("--body-timeout", "body_timeout_s", "S", "seconds to send a body, plus 1 s per --min-body-rate bytes; then 408"),
    ("--min-body-rate", "min_body_rate", "B", "bytes per second"),
    ("--keep-alive", "keep_alive_s", "S", "seconds an idle kept-alive connection stays open"),
    (
        "--max-connections",
        "max_connections",
        "N",
        "open connections per worker; beyond, the one waiting longest is closed",
    ),
    ("--max-in-flight", "max_in_flight", "N", "requests answered at once per worker; beyond, 503"),
    ("--key-failures", "key_failures", "N", "unknown API keys from one address per --key-window; beyond, 429"),
    ("--key-window", "key_window_s", "S", "seconds"),
]


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the REST service and its web page (FastAPI + uvicorn)",
        description="Serve the JSON API (/v1, OpenAPI at /docs) and the web page at /. "
        "The gallery is --gallery (a path or URL). Every /v1 endpoint needs an API key: "
        "make one with 'facenet-keras keys create --scope read|write|admin' (read: recognise and "
        "verify; write: also enrol and stylise, what the page needs; admin: also export the gallery).",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 for the network)",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (more than 1 needs a shared gallery: postgresql://... ; "
        "an SQLite gallery is served by one worker)",
    )
    p.add_argument("--tls-cert", metavar="CERT.pem", help="serve https with this certificate (with --tls-key)")
    p.add_argument("--tls-key", metavar="KEY.pem", help="the certificate's private key")
    p.add_argument(
        "--keys",
        metavar="KEYS.json",
        default=None,
        help="API keys file (default: $FACENET_KERAS_KEYS or the user data folder)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser calls from this origin (repeatable; default: none, same origin only)",
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body (default 10 MB)")
    p.add_argument("--max-pixels", type=int, default=25_000_000, help="largest photo in pixels (default 25 M)")
    for option, default, text in [
        ("--max-frames", 150, "most frames in one liveness request (default 150)"),
        (
            "--max-request-pixels",
            50_000_000,
            "most decoded pixels in one request, all its photos or frames (default 50 M)",
        ),
        (
            "--max-pixels-in-flight",
            50_000_000,
            "most decoded pixels all requests of a worker hold at once; the rest wait, then get 503 "
            "(default 50 M: two 25 MP photos, about 0.6 GB at the peak of their decoding and detection)",
        ),
    ]:
        p.add_argument(option, type=int, default=default, help=text)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take (default 60)")
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long the encoder waits for other requests' faces to fill a batch (default 5)",
    )
    limits = p.add_argument_group("slow clients, keys and audit (see docs/deploy.md)")
    from facenet_keras.service.settings import Settings  # light: no FastAPI

    defaults = Settings()
    for flag, field, metavar, text in LIMIT_OPTIONS:
        default = getattr(defaults, field)
        limits.add_argument(
            flag, type=type(default), default=default, dest=field, metavar=metavar, help=f"{text} ({default:g})"
        )
    limits.add_argument(
        "--audit-log", metavar="FILE", default=None, help="the log of writes (default: audit.log beside the keys file)"
    )
    p.add_argument("--styles", metavar="FOLDER", help="style images offered as built-in styles")
    p.add_argument(
        "--job-ttl",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="a finished style job and its image are deleted this long after it ended (default 3600)",
    )
    p.add_argument(
        "--style-model",
        metavar="DIR",
        help="your own TF-Hub-signature stylisation SavedModel for method=fast (default: Magenta's networks, "
        "offline, with 26 named built-in styles)",
    )
    p.add_argument(
        "--library",
        metavar="PATH",
        default=None,
        help="the photo library's face index for the People tab (default: beside the gallery, "
        "NAME.library.sqlite; fill it with 'facenet-keras index DIR')",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--model",
        metavar="MODEL",
        default=None,
        help="the encoder the gallery was built with (.keras from 'facenet-keras train', or an ArcFace-family "
        ".onnx file); default: the pretrained dlib ResNet. A gallery of another embedding space is refused",
    )
    profile_option(p)
    gallery_option(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", help="create, list or revoke the service's API keys")
    ksub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = ksub.add_parser("create", help="make a key (printed once; only its hash is stored)")
    c.add_argument(
        "--scope",
        required=True,
        choices=["read", "write", "admin"],
        help="read: detect/verify/recognize/compare/liveness/list; write: also enrol, rename, "
        "delete, stylize; admin: also export the gallery",
    )
    c.add_argument("--label", default="", help="a note to recognise the key by (e.g. 'door camera')")
    c.set_defaults(func=cmd_keys_create)
    c = ksub.add_parser("list", help="the keys' ids, scopes and labels (never the keys)")
    c.set_defaults(func=cmd_keys_list)
    c = ksub.add_parser("revoke", help="delete a key by its id")
    c.add_argument("id", help="the key's id (from 'keys list')")
    c.set_defaults(func=cmd_keys_revoke)
    for action in ksub.choices.values():
        action.add_argument(
            "--keys",
            metavar="KEYS.json",
            default=None,
            help="API keys file (default: $FACENET_KERAS_KEYS or the user data folder)",
        )
        action.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON instead of text"
        )


def _fail(message: str) -> int:
    print(f"facenet-keras: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _cap_malloc_arenas(arenas: int = 2) -> None:
    """Let glibc keep at most ``arenas`` heaps: by default each of the server's many threads gets its
    own, and the photo buffers freed in them stay resident (measured: 40 concurrent 25 MP photos grew
    the server by 1.02 GB with them, 0.86 GB with two). Not glibc: nothing to cap."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))  # worker processes read it when they start
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, int(os.environ["MALLOC_ARENA_MAX"]))  # -8: M_ARENA_MAX
    except (OSError, AttributeError, ValueError):
        pass


def cmd_serve(args) -> int:
    try:
        import uvicorn

        from facenet_keras.service.app import SETTINGS_ENV, Settings, configure_logging, create_app
    except ImportError as exc:
        return _fail(f"the service needs its extra: pip install 'facenet-keras[service]' ({exc})")
    if args.workers < 1:
        return _fail("--workers must be at least 1")
    for option in ("max_pixels", "max_frames", "max_request_pixels", "max_pixels_in_flight"):
        if getattr(args, option) < 1:
            return _fail(f"--{option.replace('_', '-')} must be at least 1")
    _cap_malloc_arenas()
    gallery = args.gallery
    scheme = str(gallery).partition("://")[0] if gallery and "://" in str(gallery) else "sqlite"
    if args.workers > 1 and scheme not in SHARED_SCHEMES:
        return _fail(
            f"an SQLite gallery is served by one worker (--workers 1); {args.workers} workers need a "
            "shared gallery: --gallery postgresql://..."
        )
    if not args.job_ttl > 0:
        return _fail("--job-ttl must be a positive number of seconds")
    if bool(args.tls_cert) != bool(args.tls_key):
        return _fail("--tls-cert and --tls-key go together")
    for path in filter(None, (args.tls_cert, args.tls_key, args.styles, args.style_model)):
        if not os.path.exists(path):
            return _fail(f"{path}: no such file or folder")
    for flag, field, *_ in LIMIT_OPTIONS:
        value = getattr(args, field)
        if not (value >= 1 if isinstance(value, int) else value > 0):
            return _fail(f"{flag} must be {'at least 1' if isinstance(value, int) else 'more than 0'}")
    from facenet_keras.faces.profiles import Profile, get_profile
    from facenet_keras.identity.rules import encoder_for

    profile = args.model.name if isinstance(args.model, Profile) else None  # --profile (see cli.resolve_profile)
    model = None if profile else args.model
    if model is not None and not os.path.isfile(model):
        return _fail(f"model file not found: {model}")
    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.identity.recognition import check_gallery_space

    with FaceGallery(gallery) as g:  # a bad path or URL, or another space, fails here in one line, not in every worker
        encoder = encoder_for(g, args.model)
        if encoder is None or isinstance(encoder, Profile):  # a weights package missing: refused now, not per request
            (encoder or get_profile("fast")).check_installed()
        check_gallery_space(g, encoder)
    settings = Settings(
        gallery=None if gallery is None else str(gallery),
        model=None if model is None else os.path.abspath(model),
        profile=profile,
        library=args.library,
        keys=args.keys,
        styles=args.styles,
        job_ttl_s=args.job_ttl,
        style_model=args.style_model,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        max_request_pixels=args.max_request_pixels,
        max_pixels_in_flight=args.max_pixels_in_flight,
        request_timeout_s=args.timeout,
        cors_origins=list(args.cors_origin),
        batch_wait_ms=args.batch_wait_ms,
        log_level=args.log_level,
        audit_log=args.audit_log,
        **{field: getattr(args, field) for _, field, *_ in LIMIT_OPTIONS},
    )
    from facenet_keras.service.connections import PROTOCOL, protocol_for, raise_open_file_limit

    room, backlog = raise_open_file_limit(settings.max_connections)
    if room < settings.max_connections:
        print(
            f"note: the open-file limit (ulimit -n) holds {room} connections, not {settings.max_connections}",
            file=sys.stderr,
        )
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.tls_cert:
        print(
            "note: serving plain http beyond this machine; browsers give the camera only to https pages "
            "(see docs/deploy.md for TLS)",
            file=sys.stderr,
        )
    scheme_name = "https" if args.tls_cert else "http"
    print(f"serving on {scheme_name}://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr)
    common = dict(
        host=args.host,
        port=args.port,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        log_level=args.log_level,
        access_log=False,  # our own access log names no person
        timeout_keep_alive=settings.keep_alive_s,
        backlog=backlog,
    )
    if args.workers == 1:
        configure_logging(args.log_level)
        uvicorn.run(create_app(settings), http=protocol_for(settings), **common)  # header deadline, connection cap
    else:
        os.environ[SETTINGS_ENV] = settings.to_env()  # each worker's app and connection limits
        import inspect

        # uvicorn's supervisor kills a worker that does not answer its ping in 5 s; a worker importing
        # TensorFlow and tracing the models holds the GIL longer than that on a busy machine, and was
        # killed and restarted over and over: give it a minute.
        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
            common["timeout_worker_healthcheck"] = 60
        with _shared_metrics_dir():
            uvicorn.run(
                "facenet_keras.service.app:create_app_from_env",
                factory=True,
                workers=args.workers,
                http=PROTOCOL,
                **common,
            )
    return EXIT_OK


@contextlib.contextmanager
def _shared_metrics_dir():
    """A private (0700) temporary folder where every worker writes its metrics, so that a scrape of
    any worker sums them all (prometheus_client's multiprocess mode); removed when the server stops.
    One the user set in $PROMETHEUS_MULTIPROC_DIR is used as it is, and kept."""
    from facenet_keras.service.metrics import MULTIPROC_ENV

    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="facenet-keras-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def _store(args):
    from facenet_keras.service.auth import KeyStore

    return KeyStore(args.keys)


def cmd_keys_create(args) -> int:
    store = _store(args)
    key = store.create(args.scope, args.label)
    key_id = key[3:].partition(".")[0]
    emit(
        args,
        {"id": key_id, "scope": args.scope, "label": args.label, "key": key, "file": str(store.path)},
        [key, f"(id {key_id}, scope {args.scope}; shown once: only its hash is kept in {store.path})"],
    )
    return EXIT_OK


def cmd_keys_list(args) -> int:
    store = _store(args)
    keys = store.list()
    emit(
        args,
        {
            "file": str(store.path),
            "keys": [{"id": k.id, "scope": k.scope, "label": k.label, "created": k.created} for k in keys],
        },
        [f"{store.path}: {len(keys)} key(s)"] + [f"  {k.id}  {k.scope:<5}  {k.label}" for k in keys],
    )
    return EXIT_OK


def cmd_keys_revoke(args) -> int:
    _store(args).revoke(args.id)
    emit(args, {"revoked": args.id}, [f"revoked key {args.id}"])
    return EXIT_OK
