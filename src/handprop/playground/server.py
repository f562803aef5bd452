"""The playground's server: a Flask application with a JSON API, and ``serve``.

Each tab gets a run of its own; at most :data:`MAX_RUNS` runs are kept (the
least recently used goes first), and every setting is bounded, so memory
stays bounded whatever the page asks. Bad settings get a message, in JSON,
which the page shows; the server goes on.

API (JSON): ``GET /api/parameters`` (the data's settings and the parameter
table, with the playground's defaults: what the page builds its form from);
``POST /api/uploads`` ({"csv": text}) keeps a data set of the user's;
``POST /api/runs`` (settings) makes a run; ``POST /api/runs/ID/step``
({"steps": n, "since": epoch}) trains it and answers its state, with the
history from epoch ``since`` on; ``POST /api/runs/ID/settings``
({"changes": {...}, "since": epoch}) changes live settings (learning rate,
momentum, lambdas, minibatch size) without a reset; ``POST
/api/runs/ID/math`` ({"x": .., "y": .., "label": a class, a target, or
none for the nearest point's}) shows one point's passes; ``GET
/api/runs/ID/split.npz``, ``/model.npz``, ``/data.csv`` and ``/command``
export it; ``GET /api/presets`` lists the comparisons that teach.

Under load (:mod:`handprop.playground.guard`): the math of at most
``guard.MAX_MATH`` requests runs at once (every ``/api/runs`` request waits
at a gate), a body may hold at most ``guard.MAX_BODY`` bytes, every reply is
JSON without NaN, and every error is a JSON reply ``{"error": message}``.
``serve`` runs the app on waitress, with a fixed pool of threads and the
BLAS threads of the process bounded.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

from .. import validate
from ..errors import InputError
from . import guard
from .runs import LIMITS, PRESETS, Run, Uploads, form, parse_settings

__all__ = ["create_app", "serve", "Runs", "NoSuchRun", "MAX_RUNS"]

STATIC = Path(__file__).parent / "static"
#: Runs kept at once; the least recently used is dropped first.
MAX_RUNS = 12


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class NoSuchRun(LookupError):
    """A run that was dropped (too many tabs) or never existed."""


class Runs:
    """The runs of every tab, the least recently used dropped beyond ``limit``."""

    def __init__(self, limit: int = MAX_RUNS) -> None:
        self.limit = limit
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, run: Run) -> str:
        key = secrets.token_hex(8)
        with self.lock:
            self.runs[key] = run
            while len(self.runs) > self.limit:
                self.runs.popitem(last=False)
        return key

    def get(self, key: str) -> Run:
        with self.lock:
            run = self.runs.get(key)
            if run is None:
                raise NoSuchRun(key)
            self.runs.move_to_end(key)
            return run


def create_app(limit: int = MAX_RUNS):
    """The Flask application: the page, its assets and the JSON API."""
    try:
        from flask import Flask
    except ImportError:
        raise ImportError("handprop playground needs Flask: pip install "
                          "'handprop[playground]'") from None

    app = Flask(__name__, static_folder=None)
    app.json = guard.json_provider()(app)  # NaN and infinities as null
    app.config["MAX_CONTENT_LENGTH"] = guard.MAX_BODY
    runs = Runs(limit)
    uploads = Uploads()
    app.config["RUNS"] = runs
    gate = app.config["GATE"] = guard.Gate()
    app.config["UPLOADS"] = uploads
    _guarded(app, gate)
    _page(app)
    _api(app, runs, uploads)
    return app


def _guarded(app, gate) -> None:
    """The gate around a run's math, and every error as a JSON reply."""
    from flask import jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    # A run's math (every request about runs) waits at the gate; the page,
    # its assets and the tables do not.
    @app.before_request
    def enter():
        if request.path.startswith("/api/runs"):
            gate.acquire()
            request.environ["handprop.gated"] = True

    @app.teardown_request
    def leave(exc):
        if request.environ.pop("handprop.gated", False):
            gate.release()

    def error(message: str, status: int):
        return jsonify(error=guard.shorten(message)), status

    @app.errorhandler(InputError)
    def bad_input(exc):
        return error(str(exc), 400)

    @app.errorhandler(NoSuchRun)
    def no_run(exc):
        return error("no such run: it was dropped (too many tabs) or the server restarted; "
                     "reset to start a new one", 404)

    @app.errorhandler(MemoryError)
    def out_of_memory(exc):
        return error("out of memory: ask for a smaller net or fewer points", 400)

    @app.errorhandler(guard.Busy)
    def busy(exc):
        return error(str(exc), 503)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        return error(guard.too_large(), 413)

    @app.errorhandler(HTTPException)
    def http_error(exc):  # a route that does not exist, a method it does not take
        reply, status = error(f"{exc.name}: {exc.description}", exc.code or 500)
        reply.headers.extend((k, v) for k, v in exc.get_headers()  # Allow, for a 405
                             if k.lower() != "content-type")
        return reply, status

    @app.errorhandler(Exception)
    def bug(exc):  # a bug in handprop: its traceback goes to the log, the page gets JSON
        app.logger.error("a bug in handprop on %s %s", request.method, request.path,
                         exc_info=exc)
        return error(f"a bug in handprop ({type(exc).__name__}); the server's log has its "
                     f"traceback", 500)


def _page(app) -> None:
    """The page and its assets."""
    from flask import send_from_directory

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/static/<path:name>")
    def static(name):
        return send_from_directory(STATIC, name)


def _api(app, runs: Runs, uploads) -> None:
    """The JSON API: the tables, uploads, runs and their exports."""
    from flask import Response, jsonify, request

    def body() -> dict:
        return guard.read_json(request)

    @app.get("/api/presets")
    def presets():
        return jsonify(presets=PRESETS, order=list(PRESETS), defaults=_defaults(),
                       limits=LIMITS)

    @app.get("/api/parameters")
    def parameters():
        return jsonify(**form())

    @app.post("/api/uploads")
    def upload():
        return jsonify(uploads.add(body().get("csv")).describe())

    @app.post("/api/runs")
    def new_run():
        run = Run(parse_settings(body(), uploads), uploads)
        return jsonify(id=runs.add(run), state=run.state())

    @app.post("/api/runs/<key>/step")
    def step(key):
        run, data = runs.get(key), body()
        run.advance(data.get("steps", 10))
        return jsonify(state=run.state(data.get("since", 0)))

    @app.post("/api/runs/<key>/settings")
    def retune(key):
        run, data = runs.get(key), body()
        run.retune(data.get("changes"))
        return jsonify(state=run.state(data.get("since", 0)))

    @app.post("/api/runs/<key>/math")
    def math_(key):
        data = body()
        return jsonify(runs.get(key).math(data.get("x"), data.get("y"), data.get("label")))

    @app.get("/api/runs/<key>/split.npz")
    def split(key):
        return Response(runs.get(key).split_npz(), mimetype="application/octet-stream",
                        headers={"Content-Disposition": "attachment; filename=split.npz"})

    @app.get("/api/runs/<key>/command")
    def command(key):
        return jsonify(command=runs.get(key).command())

    @app.get("/api/runs/<key>/data.csv")
    def data(key):
        return Response(runs.get(key).data_csv(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=data.csv"})

    @app.get("/api/runs/<key>/model.npz")
    def model(key):
        return Response(runs.get(key).model_bytes(), mimetype="application/octet-stream",
                        headers={"Content-Disposition": "attachment; filename=model.npz"})


def _defaults() -> dict:
    """Every setting's default on the page: the data's, and the table's."""
    info = form()
    return {p["name"]: p["text"] for p in info["data_parameters"] + info["parameters"]}


def serve(host: str = "127.0.0.1", port: int = 8050, open_browser: bool = True) -> None:
    """Serve the playground until interrupted (Ctrl-C), printing its address.

    The server is waitress (:func:`guard.serve_wsgi`), not Flask's
    development server, which starts a thread per request without limit:
    each of them could enter BLAS, and under 150 clients OpenBLAS ran past
    its thread limit and the process aborted."""
    import logging
    import socket

    port = validate.number("port", port, low=0, high=65535, integer=True)
    app = create_app()  # first: it says when Flask is missing
    guard.limit_blas()  # each of the gate's requests gets its share of the cores
    guard.return_freed_memory()  # memory goes back down after a load

    # The socket is bound here, not by the WSGI server: a host that does not
    # resolve or a port in use is an OSError that names them (the CLI's one
    # line).
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((host, port), family=family,
                                        backlog=guard.CONNECTIONS)
    except OSError as exc:
        raise OSError(f"cannot serve the playground on {host}:{port}: "
                      f"{exc.strerror or exc}") from None
    try:
        server = guard.serve_wsgi(app, listener)
    except BaseException:
        listener.close()
        raise
    # waitress says when its queue of requests grows or its connections reach
    # their limit: under load, that is the limits doing their work, not news.
    logging.getLogger("waitress").setLevel(logging.ERROR)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{f'[{shown}]' if ':' in shown else shown}:{listener.getsockname()[1]}/"
    print(f"handprop playground: {url} (Ctrl-C stops it)", flush=True)
    if open_browser and not os.environ.get("HANDPROP_NO_BROWSER"):
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run()  # until Ctrl-C, which waitress catches, stopping its threads
    finally:
        server.close()

