"""Radicale, a real CalDAV server, on loopback: the local stand-in for iCloud (PRODUCT.md §4).

Runs in-process (Radicale's WSGI application on a werkzeug server thread) with htpasswd
authentication, so tests can sign in with an Apple-ID-like user and an app-specific-password-like
password, and get a real 401 for a wrong one.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
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
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

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
        """Serve on a free loopback port in a daemon thread."""
        self._server = make_server("127.0.0.1", self._port, self._app(), threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="radicale", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the storage if this object created it."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:5232``."""
        if self._server is None:
            raise RuntimeError("Radicale is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def endpoints(self) -> dict[str, str]:
        """What the local stack prints."""
        return {"caldav": self.url}

    def __enter__(self) -> RadicaleServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
