"""Radicale, a real CalDAV server, on loopback: the local stand-in for iCloud (PRODUCT.md §4).

Runs in-process (Radicale's WSGI application on a werkzeug server thread) with htpasswd
authentication, so tests can sign in with an Apple-ID-like user and an app-specific-password-like
password, and get a real 401 for a wrong one.

:meth:`RadicaleServer.pause` / :meth:`RadicaleServer.resume` (or the :meth:`RadicaleServer.outage`
context manager) take the server down and bring it back on the *same* port with the same users and
calendars: an iCloud outage as clients see it (connection refused), not a new server.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """No per-request access log lines (they drown test output)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class RadicaleServer:
    """A Radicale CalDAV server on 127.0.0.1 with plain-text htpasswd users."""

    def __init__(self, *, port: int = 0, storage_dir: str | None = None) -> None:
        self._own_dir = storage_dir is None
        self.root = Path(storage_dir or tempfile.mkdtemp(prefix="radicale-"))
        self.htpasswd = self.root / "users"
        self.htpasswd.touch()
        self._users: dict[str, str] = {}
        self._requested_port = port
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._application: Any = None
        #: How many times :meth:`pause` took the server down.
        self.outages = 0

    # -- users -----------------------------------------------------------------------------
    def add_user(self, username: str, password: str) -> None:
        """Create or replace a user (e.g. an Apple ID with its app-specific password)."""
        self._users[username] = password
        self.htpasswd.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))

    def remove_user(self, username: str) -> None:
        """Delete a user: its password now answers 401 (a revoked app-specific password)."""
        self._users.pop(username, None)
        self.htpasswd.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))

    # -- lifecycle -------------------------------------------------------------------------
    def _app(self) -> Any:
        import logging

        import radicale
        import radicale.config

        logging.getLogger("radicale").setLevel(logging.ERROR)

        configuration = radicale.config.load()
        configuration.update(
            {
                "auth": {
                    "type": "htpasswd",
                    "htpasswd_filename": str(self.htpasswd),
                    "htpasswd_encryption": "plain",
                    "delay": "0",
                },
                "storage": {"filesystem_folder": str(self.root / "collections")},
                "rights": {"type": "owner_only"},
                "logging": {"level": "warning", "mask_passwords": "True"},
            },
            "devstack",
            privileged=True,
        )
        return radicale.Application(configuration)  # type: ignore[attr-defined]

    def start(self) -> None:
        """Serve on a free loopback port (or the one given) in a daemon thread."""
        if self._server is not None:
            return
        if self._application is None:
            self._application = self._app()
        self._server = make_server(
            "127.0.0.1", self._port, self._application, threaded=True, request_handler=_QuietHandler
        )
        self._port = int(self._server.server_port)  # a restart binds the same port
        self._thread = threading.Thread(target=self._server.serve_forever, name="radicale", daemon=True)
        self._thread.start()

    def _shutdown(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def pause(self) -> None:
        """Stop serving but keep the port, the users and the calendars: connections are refused until
        :meth:`resume` (the server closes every connection after its answer, so no client holds one
        open across the outage)."""
        if self._server is None:
            raise RuntimeError("Radicale is not running")
        self._shutdown()
        self.outages += 1

    def resume(self) -> None:
        """Serve again after :meth:`pause`, on the same port with the same data."""
        if self._application is None:
            raise RuntimeError("Radicale was never started")
        self.start()

    @property
    def running(self) -> bool:
        """Whether it is serving (not stopped, not paused)."""
        return self._server is not None

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Down for the ``with`` block, back afterwards (also when the block raises)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def stop(self) -> None:
        """Stop serving and remove the storage if this object created it."""
        self._shutdown()
        self._application = None
        self._port = self._requested_port
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:5232`` (known while paused: it comes back there)."""
        if self._application is None or not self._port:
            raise RuntimeError("Radicale is not running")
        return f"http://127.0.0.1:{self._port}"

    def endpoints(self) -> dict[str, str]:
        """What the local stack prints."""
        return {"caldav": self.url}

    def __enter__(self) -> RadicaleServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
