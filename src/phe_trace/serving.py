"""How phe-trace serves HTTP: one in-process runner, one foreground server.

The simulator (``make demo``), the benchmarks and the tests run the real services over
real HTTP through :class:`LoopbackServer`; nothing else starts uvicorn in a thread. The
server binds its socket when it is made, so :attr:`~LoopbackServer.url` and
:attr:`~LoopbackServer.port` are known before it starts (port 0 picks a free port and
the attributes hold the one bound). :meth:`~LoopbackServer.start` returns once the
application started up and the socket accepts requests; :meth:`~LoopbackServer.stop`
asks uvicorn to finish and waits for its thread, whatever ``start`` reached.

Access logs are off (a client address is never written anywhere) and uvicorn leaves the
process's logging configuration alone: its own records go where every other one goes.

:func:`run` is the foreground server of every ``run`` command, with the same options. It
writes uvicorn's records as every role writes its own (:func:`phe_trace.logs.configure_logging`:
one JSON object per line on stderr), in the supervising process of several workers too,
instead of uvicorn's plain-text format.

``uvicorn`` is imported only when a server is made, so the device install, which has no
uvicorn, can import this module.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from phe_trace.errors import PheTraceError

__all__ = ["SERVER_OPTIONS", "LoopbackServer", "ServingError", "free_port", "run", "serve"]


class ServingError(PheTraceError):
    """Raised when an in-process server does not start serving (its thread ended, or timed out)."""

    code = "serving_failed"


#: uvicorn's options under every phe-trace server: no access log (no client address is
#: written anywhere, SPEC PUB-10), no ``X-Forwarded-*`` rewriting of the client, no
#: ``Server`` header.
SERVER_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
}


def run(app: Any, *, host: str, port: int, workers: int = 1, log_level: str = "warning") -> None:
    """Serve ``app`` in the foreground until SIGINT or SIGTERM (the ``run`` commands).

    ``app`` is an ASGI app, or with ``workers`` > 1 the ``"module:factory"`` that each
    worker process calls to make its own.
    """
    import uvicorn
    from uvicorn.config import LOG_LEVELS

    from phe_trace.logs import UVICORN_LOGGER, configure_logging

    configure_logging(UVICORN_LOGGER, LOG_LEVELS[log_level.lower()])
    # log_config=None: uvicorn installs no handler of its own (each worker, started afresh,
    # gets the JSON handler again when its app is made: every role's set-up configures it).
    options: dict[str, Any] = {
        **SERVER_OPTIONS,
        "host": host,
        "port": port,
        "log_level": log_level,
        "log_config": None,
    }
    if workers > 1:
        uvicorn.run(app, factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)


def free_port(host: str = "127.0.0.1", count: int = 1) -> int:
    """A port free on ``host`` at the time of asking (for a server in another process);
    with ``count``, the first of that many consecutive free ports (a radio room's)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            first = int(probe.getsockname()[1])
        if count == 1:
            return first
        if first + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                held.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                held[-1].bind((host, port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return first
    raise ServingError(f"no {count} consecutive free ports on {host}")


class LoopbackServer:
    """uvicorn serving ``app`` on ``host``:``port`` in a daemon thread; a context manager.

    ``lifespan`` is uvicorn's: ``"on"`` runs the application's start-up and shut-down
    (the key server's, the aggregator's and the gateway's background loops) and fails the
    start when they fail; ``"off"`` skips them.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "on",
        log_level: str = "warning",
        name: str = "phe-trace-server",
        start_timeout: float = 20.0,
    ) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.start_timeout = start_timeout
        config = uvicorn.Config(
            app, lifespan=lifespan, log_level=log_level, log_config=None, **SERVER_OPTIONS
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)

    def _run(self) -> None:
        # uvicorn ends a failed start-up with sys.exit: the thread then just ends, and
        # start reports it.
        with contextlib.suppress(SystemExit):
            self.server.run(sockets=[self.sock])

    def start(self) -> str:
        """Start serving; return :attr:`url` once the application answers requests."""
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise ServingError(f"the server on {self.url} stopped while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise ServingError(
                    f"the server on {self.url} did not start within {self.start_timeout:g} s"
                )
            time.sleep(0.01)  # waiting for a real socket
        return self.url

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread (at most 10 s); close the socket.

        Safe whatever ``start`` reached: never called, or interrupted (Ctrl-C) while the
        thread was being launched and had not yet said it runs.
        """
        self.server.should_exit = True
        try:
            if self.thread.ident is None and not self.thread.is_alive():
                return  # never launched: nothing to wait for
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    self.thread.join(timeout=max(0.0, deadline - time.monotonic()))
                    return
                except RuntimeError:  # launched, but its start not yet acknowledged
                    time.sleep(0.01)
        finally:
            self.sock.close()

    def __enter__(self) -> LoopbackServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port for the block; yield its base URL.

    ``options`` are :class:`LoopbackServer`'s.
    """
    with LoopbackServer(app, **options) as server:
        yield server.url
