"""A local HTTP mirror for the download tests, so that they need no network:
a folder served on 127.0.0.1, with special answers (errors, floods,
redirects) for some paths, and a record of every request."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple


class Mirror(NamedTuple):
    url: str  # "http://127.0.0.1:PORT/", with the trailing slash
    requests: list  # the paths asked for, in order


@contextlib.contextmanager
def serve(folder: Path | None = None,
          routes: dict[str, Callable] | None = None) -> Iterator[Mirror]:
    """Serve ``folder`` at a free port of 127.0.0.1 while the block runs.
    ``routes`` maps a path ("/NAME.gz") to ``answer(handler, count)``, which
    writes the whole response itself (``count``: how many times that path
    was asked for, 1 the first time)."""
    asked: list[str] = []
    routes = routes or {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder or "/nonexistent"), **kwargs)

        def do_GET(self):  # noqa: N802 (http.server's name)
            asked.append(self.path)
            answer = routes.get(self.path)
            if answer is None:
                return super().do_GET()
            try:
                answer(self, asked.count(self.path))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up, as it should on a flood

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Mirror(f"http://127.0.0.1:{server.server_address[1]}/", asked)
    finally:
        server.shutdown()
        server.server_close()


def archives(folder: Path) -> dict[str, tuple[int, str]]:
    """MNIST_ARCHIVES for the gzipped files in ``folder`` (the test copies
    are not byte for byte the mirrors' archives)."""
    out = {}
    for path in sorted(folder.glob("*.gz")):
        data = path.read_bytes()
        out[path.name[:-3]] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def flood(handler, count: int) -> None:
    """An answer that never ends: zeros, without a length."""
    handler.send_response(200)
    handler.end_headers()
    block = bytes(1 << 20)
    for _ in range(256):  # 256 MB at most, so that the test thread ends too
        handler.wfile.write(block)


def error(status: int = 500):
    def answer(handler, count: int) -> None:
        handler.send_error(status)
    return answer


def redirect(location: str):
    def answer(handler, count: int) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def fail_then(path: Path, failures: int):
    """Answer 503 ``failures`` times, then the file."""
    def answer(handler, count: int) -> None:
        if count <= failures:
            handler.send_error(503)
            return
        data = path.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return answer
