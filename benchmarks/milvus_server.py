"""A Milvus 2.3.5 standalone server for the gallery benchmark, from the ``milvus`` wheel (benchmarks only).

    pip install --no-deps milvus==2.3.5          # ships the Milvus binary (linux x86_64), runs offline
    python benchmarks/milvus_server.py DIR       # prints milvus://127.0.0.1:PORT, serves until Ctrl+C / SIGTERM

The wheel ("embedded Milvus", Milvus Lite's predecessor) holds the real ``milvus`` standalone binary
with embedded etcd and local storage, so ``milvus://`` (the code path a Milvus cluster uses) can be
measured on one machine. Everything it writes (binary, configuration, etcd, segments, logs) lives
under DIR; it listens on 127.0.0.1. Not a dependency of the package: the tests use milvus-lite.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="the server's folder (kept: a later start serves the same collections)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a milvus.yaml setting, e.g. proxy.timeTickInterval=20 (ms; default 200: Strong reads wait for it)",
    )
    args = ap.parse_args(argv)
    try:
        from milvus import MilvusServer
    except ImportError:
        sys.exit("needs the milvus wheel: pip install --no-deps milvus==2.3.5")
    server = MilvusServer()
    server.set_base_dir(str(args.data.resolve()))
    for item in args.set:
        key, _, value = item.partition("=")
        server.config.set(key, int(value) if value.isdigit() else value)
    t = time.perf_counter()
    server.start()  # unpacks the binary into DIR/bin the first time, then waits for /healthz
    ready = time.perf_counter() - t
    print(f"milvus://127.0.0.1:{server.listen_port}  (Milvus 2.3.5 standalone, ready in {ready:.1f} s)")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while server.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        proc = server.server_proc
        if proc is not None:  # a clean shutdown (the wheel's own stop kills it after 1 s)
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except Exception:
                pass
        server.stop()


if __name__ == "__main__":
    main()
