"""What keeps the playground's server up under hostile use.

The server (:mod:`handprop.playground.server`) trains nets in request
threads. Left alone, each request thread that reaches NumPy's BLAS takes a
slot of OpenBLAS's thread metadata and a buffer of tens of megabytes: a
thread per request (Flask's development server) under 150 clients ran
OpenBLAS past its compiled thread limit ("precompiled NUM_THREADS
exceeded"), after which glibc aborted the process on a corrupted heap, and
kept gigabytes after the load. This module bounds every part of that:

- :class:`Gate`: at most :data:`MAX_MATH` requests run a run's math at once
  (every ``/api/runs`` request); the others wait, at most :data:`WAIT`
  seconds, then get a 503 that says the server is busy;
- :func:`limit_blas`: each of them uses at most ``cpus // MAX_MATH`` BLAS
  threads (threadpoolctl), so that the math of the server never asks for
  more threads than the machine has cores;
- :func:`return_freed_memory`: freed arrays go back to the system, so the
  server's memory returns to its baseline after a load;
- :func:`serve_wsgi`: the server is waitress, a production WSGI server with
  a fixed pool of :data:`THREADS` threads (so only those threads ever enter
  BLAS) and at most :data:`CONNECTIONS` connections; a body larger than
  :data:`MAX_BODY` is refused from its Content-Length, before it is read;
- :func:`read_json`: a request's JSON is parsed by
  :func:`handprop.files.parse_json`, which refuses a text nested too deep, a
  number of too many digits, and NaN, before Python's parser sees it;
- :func:`json_provider`: every reply is JSON that any parser reads: NaN and
  infinities are sent as ``null``;
- :func:`shorten` and :func:`error_json`: every error is a JSON reply
  ``{"error": message}``, the message cut to :data:`MAX_MESSAGE`
  characters, whatever raised it (a bad setting, a route that does not
  exist, a bug: the server's error handlers; waitress itself: its error
  task, here).
"""

from __future__ import annotations

import json
import math
import os
import threading

from ..errors import InputError
from ..files import parse_json

__all__ = ["MAX_BODY", "MAX_MATH", "MAX_MESSAGE", "THREADS", "CONNECTIONS", "WAIT",
           "MMAP_THRESHOLD", "Busy", "Gate", "blas_threads", "cpus", "error_json",
           "json_provider", "json_safe", "limit_blas", "read_json", "return_freed_memory",
           "serve_wsgi", "shorten", "too_large"]

#: The largest request body, in bytes. The page's largest request is a run's
#: settings (well under 10 KB); parsing 256 KiB of JSON takes under 0.1 s.
MAX_BODY = 256 << 10
#: The longest error message sent: a message that echoes a value is cut.
MAX_MESSAGE = 500
#: Seconds a request waits for the math before it is told the server is busy.
WAIT = 60.0
#: The waitress threads that serve requests (the only threads that enter BLAS).
THREADS = 8
#: Connections served at once; the others wait in the listening socket's backlog.
CONNECTIONS = 100


def cpus() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


#: Requests whose math runs at once: the cores, at most 4 (a run's math is
#: small: more at once only shares the same cores).
MAX_MATH = max(1, min(4, cpus()))


def blas_threads() -> int:
    """BLAS threads for each of the :data:`MAX_MATH` requests: the cores, shared."""
    return max(1, cpus() // MAX_MATH)


def limit_blas(threads: int | None = None):
    """Limit every BLAS library loaded in this process to ``threads`` threads
    (default :func:`blas_threads`), for the whole process; the returned
    threadpoolctl object's ``restore_original_limits()`` undoes it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise ImportError("handprop playground needs threadpoolctl: pip install "
                          "'handprop[playground]'") from None
    return threadpool_limits(limits=blas_threads() if threads is None else threads,
                             user_api="blas")


#: glibc's ``mallopt`` parameter: the size from which ``malloc`` maps memory of its own.
_M_MMAP_THRESHOLD = -3
#: Blocks of this size or more are mapped on their own, and unmapped when freed.
MMAP_THRESHOLD = 128 << 10


def return_freed_memory() -> bool:
    """Make glibc give every freed block of :data:`MMAP_THRESHOLD` bytes or
    more back to the system at once; True if it was set.

    glibc maps such blocks on their own, but raises that threshold each time
    one is freed, after which freed arrays stay in its heaps: the server's
    memory then kept every request's peak (a run's state is a few MB of
    arrays). A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``) keeps it
    where it is, so memory goes back down after a load. Elsewhere than glibc,
    nothing is changed (False)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not a C library that has mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


class Busy(Exception):
    """The math of other requests took every place for longer than :data:`WAIT`."""


class Gate:
    """At most ``size`` holders at once; the others wait at most ``wait``
    seconds, then :class:`Busy` is raised."""

    def __init__(self, size: int = MAX_MATH, wait: float = WAIT) -> None:
        self.size, self.wait = size, wait
        self._places = threading.BoundedSemaphore(size)

    def acquire(self) -> None:
        if not self._places.acquire(timeout=self.wait):
            raise Busy(f"the server is busy: {self.size} requests' math took every place for "
                       f"{self.wait:g} s; try again")

    def release(self) -> None:
        self._places.release()


# --------------------------------------------------------------------------
# JSON in, JSON out
# --------------------------------------------------------------------------


def read_json(request) -> dict:
    """The JSON object of a Flask request's body, or an InputError. The body
    is at most the app's MAX_CONTENT_LENGTH (werkzeug refuses more with a
    413 before reading it); its text is checked by :func:`parse_json`."""
    if not request.is_json:
        raise InputError("the request must be a JSON object (Content-Type: application/json)")
    raw = request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the request is not UTF-8 text") from None
    data = parse_json(text, "the request", kind="a request the playground takes")
    if not isinstance(data, dict):
        raise InputError("the request must be a JSON object")
    return data


def json_safe(value):
    """``value`` with NaN and infinities (which JSON does not have) as None,
    in every dict, list and tuple."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to ``limit`` characters, saying how much was cut."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message) - limit} more characters cut)"


def json_provider():
    """Flask's JSON provider class, with NaN and infinities sent as null
    (a function: Flask is an optional extra, imported on first use)."""
    from flask.json.provider import DefaultJSONProvider

    class JSONProvider(DefaultJSONProvider):
        """Flask's JSON, with NaN and infinities sent as null: Python's
        ``json`` writes them as the bare words NaN and Infinity, which are
        not JSON, and a browser's ``JSON.parse`` refuses the whole reply."""

        def dumps(self, obj, **kwargs) -> str:
            kwargs["allow_nan"] = False
            return super().dumps(json_safe(obj), **kwargs)

    return JSONProvider


def too_large(limit: int = MAX_BODY) -> str:
    """What a request over the body limit is told."""
    return f"the request is larger than the playground's limit of {limit >> 10} KiB"


def error_json(message: str) -> str:
    """The JSON of an error reply, its message shortened."""
    return json.dumps({"error": shorten(message)})


# --------------------------------------------------------------------------
# The WSGI server
# --------------------------------------------------------------------------


def serve_wsgi(app, listener, *, threads: int = THREADS, connections: int = CONNECTIONS,
               max_body: int = MAX_BODY):
    """A waitress server of ``app`` on the bound, listening socket
    ``listener``, not yet running (call its ``run()``, then ``close()``).
    Its own error replies (a body too large, a malformed request) are JSON
    too."""
    try:
        from waitress.channel import HTTPChannel
        from waitress.server import create_server
        from waitress.task import ErrorTask
    except ImportError:
        raise ImportError("handprop playground needs waitress: pip install "
                          "'handprop[playground]'") from None

    class JSONErrorTask(ErrorTask):
        """waitress's refusal (text/plain) as a JSON reply."""

        def execute(self) -> None:
            error = self.request.error
            message = (too_large(max_body) if error.code == 413 else
                       f"{error.reason}: {error.body}")
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            data = error_json(message).encode("utf-8")
            self.content_length = len(data)
            self.write(data)

    class JSONChannel(HTTPChannel):
        error_task_class = JSONErrorTask

    # waitress refuses a body of max_request_body_size bytes or more; the
    # app's MAX_CONTENT_LENGTH refuses more than max_body: the same limit.
    server = create_server(app, sockets=[listener], threads=threads,
                           connection_limit=connections, max_request_body_size=max_body + 1,
                           asyncore_use_poll=True, ident="handprop", expose_tracebacks=False)
    server.channel_class = JSONChannel
    return server
