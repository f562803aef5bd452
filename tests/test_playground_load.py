"""The playground's server under hostile use: many clients at once, a 100 MB
body, a body nested 100,000 deep, x = 1e308, NaN, and every error as JSON.

Most tests run the real server, ``python -m handprop playground --port 0``,
in a subprocess, and read its memory and threads from /proc; the others
check, in this process, what a subprocess cannot show (how many requests
run their math at once, the BLAS threads ``serve`` sets). Every hostile
input is made here, on the fly."""

from __future__ import annotations

import http.client
import json
import platform
import random
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from handprop.playground import MAX_RUNS, Run, create_app, guard  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads the server's memory and threads from /proc")

MB = 1 << 20


# --------------------------------------------------------------------------
# A real server, and a client
# --------------------------------------------------------------------------


class Server:
    """``handprop playground`` in a subprocess; a thread samples its memory
    (RSS) and threads from /proc every 20 ms."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handprop", "playground", "--no-browser", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("handprop playground: http://"), (
            line + self.process.stderr.read())
        url = urlparse(line.split()[2])
        self.host, self.port = url.hostname, url.port
        self.peak_rss = self.peak_threads = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _status(self, key: str) -> int:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{self.process.pid}/status")

    def rss(self) -> float:
        """The server's resident memory now, in MB."""
        return self._status("VmRSS") / 1024

    def threads(self) -> int:
        return self._status("Threads")

    def _sample(self) -> None:
        while not self._stop.is_set() and self.process.poll() is None:
            try:
                self.peak_rss = max(self.peak_rss, self.rss())
                self.peak_threads = max(self.peak_threads, self.threads())
            except (OSError, AssertionError):  # it ended
                return
            time.sleep(0.02)

    def reset_peaks(self) -> None:
        self.peak_rss, self.peak_threads = self.rss(), self.threads()

    def call(self, method: str, path: str, body=None, *, data: bytes | None = None,
             content_type: str = "application/json", timeout: float = 120):
        """(status, Content-Type, reply bytes) of one request on a new connection."""
        if body is not None:
            data = json.dumps(body).encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": content_type} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            reply = conn.getresponse()
            return reply.status, reply.getheader("Content-Type", ""), reply.read()
        finally:
            conn.close()

    def stop(self) -> str:
        """Stop the server; its standard error (its log)."""
        self._stop.set()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


def strict_json(data: bytes):
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are not JSON."""
    def refuse(name):
        raise AssertionError(f"{name} in a reply: not JSON")

    return json.loads(data, parse_constant=refuse)


def json_error(status: int, content_type: str, data: bytes, expected_status: int) -> str:
    """The message of a JSON error reply, checked."""
    assert status == expected_status, (status, data[:300])
    assert content_type.startswith("application/json"), (content_type, data[:300])
    reply = strict_json(data)
    assert set(reply) == {"error"} and isinstance(reply["error"], str), reply
    return reply["error"]


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    log = srv.stop()
    assert "Traceback" not in log, log[-3000:]


# --------------------------------------------------------------------------
# 4. Many clients at once
# --------------------------------------------------------------------------


def test_100_clients_of_mixed_requests_leave_it_alive_answering_and_at_its_baseline():
    """100 client threads of creates, steps, math and exports at once. Before
    the limits, 150 such clients aborted the server ("double free or
    corruption", right after OpenBLAS's "precompiled NUM_THREADS exceeded"),
    and at 80 its memory peaked at 3.3 GB and stayed at 2.6 GB."""
    srv = Server()
    try:
        settings = {"hidden": "128,128", "points": 1000, "batch_size": 50}

        def create(seed: int) -> str:
            status, _, data = srv.call("POST", "/api/runs", {**settings, "seed": seed})
            assert status == 200, data[:300]
            return strict_json(data)["id"]

        # The baseline: the runs kept at their bound, each stepped, shown and exported.
        ids = [create(seed) for seed in range(MAX_RUNS)]
        for key in ids:
            for method, path, body in [("POST", "step", {"steps": 20}),
                                       ("POST", "math", {"x": 0.5, "y": 0.1, "label": 1}),
                                       ("GET", "model.npz", None)]:
                assert srv.call(method, f"/api/runs/{key}/{path}", body)[0] == 200
        time.sleep(0.5)
        baseline = srv.rss()
        srv.reset_peaks()

        replies: dict[tuple[str, int], int] = {}
        failures: list[str] = []
        lock = threading.Lock()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(4):
                kind = rng.choice(["create", "step", "step", "math", "math", "model.npz",
                                   "data.csv", "command"])
                with lock:
                    key = rng.choice(ids[-MAX_RUNS // 2:])  # a recent run; it may be dropped
                try:
                    if kind == "create":
                        status, ctype, data = srv.call("POST", "/api/runs",
                                                       {**settings, "seed": rng.randrange(99)})
                        if status == 200:
                            with lock:
                                ids.append(strict_json(data)["id"])
                    elif kind == "step":
                        status, ctype, data = srv.call("POST", f"/api/runs/{key}/step",
                                                       {"steps": rng.randrange(1, 30)})
                    elif kind == "math":
                        status, ctype, data = srv.call(
                            "POST", f"/api/runs/{key}/math",
                            {"x": rng.uniform(-2, 2), "y": rng.uniform(-2, 2), "label": 1})
                    else:
                        status, ctype, data = srv.call("GET", f"/api/runs/{key}/{kind}")
                    if status == 200 and kind not in ("model.npz", "data.csv"):
                        strict_json(data)
                    elif status != 200:  # a run dropped by newer ones: 404, in JSON
                        json_error(status, ctype, data, 404)
                    with lock:
                        replies[kind, status] = replies.get((kind, status), 0) + 1
                except Exception as exc:  # noqa: BLE001 - every failure is reported
                    with lock:
                        failures.append(f"{kind}: {exc!r}"[:300])

        start = time.monotonic()
        clients = [threading.Thread(target=client, args=(i,)) for i in range(100)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=300)
        wall = time.monotonic() - start
        assert not any(t.is_alive() for t in clients), "clients still waiting after 300 s"
        assert not failures, failures[:5]
        assert srv.process.poll() is None, "the server died under load"
        assert sum(replies.values()) == 400
        assert all(replies.get((kind, 200)) for kind in ("step", "math", "model.npz")), replies

        # alive and answering
        status, _, data = srv.call("GET", "/api/parameters")
        assert status == 200 and strict_json(data)["parameters"]
        # OpenBLAS was entered by the server's fixed pool of threads only: its
        # BLAS threads (one fewer than the cores), waitress's, and the main one
        assert srv.peak_threads <= guard.THREADS + guard.cpus() + 4, srv.peak_threads
        time.sleep(1.0)
        after = srv.rss()
        # memory: a bounded peak, and back near the baseline afterwards
        assert srv.peak_rss - baseline < 400, (baseline, srv.peak_rss)
        assert after - baseline < 25, (baseline, srv.peak_rss, after)
        print(f"\n100 clients, 400 requests in {wall:.1f} s: {sorted(replies.items())}; "
              f"threads at most {srv.peak_threads}; RSS baseline {baseline:.0f} MB, "
              f"peak {srv.peak_rss:.0f} MB, after {after:.0f} MB")
    finally:
        log = srv.stop()
    assert "OpenBLAS" not in log and "Traceback" not in log, log[-3000:]


def test_the_math_of_at_most_MAX_MATH_requests_runs_at_once(monkeypatch):
    """The gate: 24 requests on 12 runs at once (a run's own lock would
    serialize steps of one run), and never more than MAX_MATH inside."""
    from werkzeug.serving import make_server

    app = create_app()
    inside = peak = 0
    count = threading.Lock()
    advance = Run.advance

    def watched(self, steps):
        nonlocal inside, peak
        with count:
            inside += 1
            peak = max(peak, inside)
        try:
            time.sleep(0.05)  # long enough for the others to pile up
            return advance(self, steps)
        finally:
            with count:
                inside -= 1

    monkeypatch.setattr(Run, "advance", watched)
    srv = make_server("127.0.0.1", 0, app, threaded=True)  # a thread per request
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        def call(path, body):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            reply = conn.getresponse()
            status, data = reply.status, reply.read()
            conn.close()
            assert status == 200, data[:300]
            return strict_json(data)

        ids = [call("/api/runs", {"hidden": "4", "seed": i})["id"] for i in range(MAX_RUNS)]
        threads = [threading.Thread(target=call, args=(f"/api/runs/{ids[i % MAX_RUNS]}/step",
                                                        {"steps": 2})) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        srv.shutdown()
    assert peak == guard.MAX_MATH, (peak, guard.MAX_MATH)


def test_a_request_that_waits_too_long_for_the_math_is_told_the_server_is_busy():
    app = create_app()
    gate = app.config["GATE"]
    gate.wait = 0.2
    c = app.test_client()
    key = c.post("/api/runs", json={"hidden": "4"}).get_json()["id"]
    for _ in range(gate.size):  # the math of others holds every place
        gate.acquire()
    try:
        start = time.monotonic()
        r = c.post(f"/api/runs/{key}/step", json={"steps": 1})
        assert time.monotonic() - start < 5
        message = json_error(r.status_code, r.content_type, r.data, 503)
        assert message.startswith("the server is busy"), message
        assert c.get("/api/parameters").status_code == 200  # the page's tables do not wait
    finally:
        for _ in range(gate.size):
            gate.release()
    assert c.post(f"/api/runs/{key}/step", json={"steps": 1}).status_code == 200


def test_serve_bounds_the_blas_threads_and_returns_freed_memory(monkeypatch):
    """What ``serve`` sets before it serves: each of the gate's MAX_MATH
    requests gets cores // MAX_MATH BLAS threads, and glibc gives freed
    arrays back (checked in the load test above, by the memory after it)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from handprop.playground import server

    seen = {}

    def stop_at_the_server(app, listener, **kwargs):  # where serve would start serving
        seen["blas"] = {i["num_threads"] for i in threadpoolctl.threadpool_info()
                        if i["user_api"] == "blas"}
        listener.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(guard, "serve_wsgi", stop_at_the_server)
    # limits=None changes nothing, and puts this process's BLAS back as it was
    with threadpoolctl.threadpool_limits(limits=None), pytest.raises(KeyboardInterrupt):
        server.serve("127.0.0.1", 0, open_browser=False)
    assert seen["blas"] == {guard.blas_threads()}, seen
    assert guard.cpus() < 2 or guard.blas_threads() < guard.cpus()
    if platform.libc_ver()[0] == "glibc":
        assert guard.return_freed_memory()


# --------------------------------------------------------------------------
# 5. A 100 MB body
# --------------------------------------------------------------------------


def _send_body(srv: Server, *, chunked: bool, size: int = 100 * MB):
    """POST a ``size`` body of one JSON list ({"steps": [1, 1, ...]}) made on
    the fly, a MB at a time, stopping when the server answers; (status line,
    headers and body of the reply, MB sent, seconds)."""
    head = ("POST /api/runs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + ("Transfer-Encoding: chunked\r\n\r\n" if chunked else
               f"Content-Length: {size}\r\n\r\n"))
    piece = b"1," * (MB // 2)
    start = time.monotonic()
    sent = 0
    with socket.create_connection((srv.host, srv.port), timeout=60) as sock:
        try:
            sock.sendall(head.encode())
            while sent < size and not select.select([sock], [], [], 0)[0]:
                data = b'{"steps": [' + piece if sent == 0 else piece
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: its reply is there to read
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    return reply, sent / MB, time.monotonic() - start


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_100_MB_body_is_refused_at_once_with_little_memory(server, chunked):
    """Before the limit, a 100 MB body took 70 s and 4.5 GB, and the 400 reply
    echoed the whole list back."""
    before = server.rss()
    server.reset_peaks()
    reply, sent, seconds = _send_body(server, chunked=chunked)
    time.sleep(0.1)  # a last sample
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    ctype = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-type:"))
    message = json_error(status, ctype, body, 413)
    assert message == guard.too_large()
    assert seconds < 10 and sent < 10, (seconds, sent)  # refused, not read
    assert server.peak_rss - before < 30, (before, server.peak_rss)
    assert server.call("GET", "/api/parameters")[0] == 200  # and it goes on


def test_a_body_over_the_limit_is_refused_by_the_app_too():
    """The limit holds under any WSGI server (the browser tests use
    werkzeug's): Flask refuses the body from its length, in JSON."""
    c = create_app().test_client()
    data = b'{"steps": [' + b"1," * (guard.MAX_BODY // 2) + b"1]}"
    r = c.post("/api/runs", data=data, content_type="application/json")
    message = json_error(r.status_code, r.content_type, r.data, 413)
    assert "limit of" in message


def test_echoed_values_are_shortened(server, monkeypatch):
    # a long list just under the body limit: the message names it, shortly
    steps = [1] * (guard.MAX_BODY // 4)  # "1, " each
    status, _, data = server.call("POST", "/api/runs", {"points": steps})
    assert status == 400 and len(data) < 1000, data[:1000]
    # any message, whatever raised it, is cut
    app = create_app()
    c = app.test_client()
    key = c.post("/api/runs", json={"hidden": "4"}).get_json()["id"]

    def echo(self, steps):
        from handprop.errors import InputError
        raise InputError(f"steps must be a number, got {steps!r}")

    monkeypatch.setattr(Run, "advance", echo)
    r = c.post(f"/api/runs/{key}/step", json={"steps": "x" * 100_000})
    message = json_error(r.status_code, r.content_type, r.data, 400)
    assert message.startswith("steps must be a number, got 'xxx")
    assert len(message) < guard.MAX_MESSAGE + 100 and "characters cut" in message


# --------------------------------------------------------------------------
# 6. Nesting, overflow, NaN: every reply JSON, every error JSON
# --------------------------------------------------------------------------


def test_a_body_nested_100000_deep_is_a_json_error(server):
    key = strict_json(server.call("POST", "/api/runs", {"hidden": "4"})[2])["id"]
    deep = "[" * 100_000 + "]" * 100_000
    for path, text in [("/api/runs", deep),
                       (f"/api/runs/{key}/math", '{"x": ' + deep + ', "y": 0}'),
                       (f"/api/runs/{key}/step", '{"steps": ' + "{" * 100_000)]:
        message = json_error(*server.call("POST", path, data=text.encode()), 400)
        assert message == "the request: nested more than 64 deep: not a request the " \
                          "playground takes", message


@pytest.mark.parametrize("point", [
    {"x": 1e308, "y": 0, "label": 1}, {"x": -1e308, "y": 1e308, "label": 0},
    {"x": 1e308, "y": 1e308, "label": 1}])
@pytest.mark.parametrize("settings", [
    {"hidden": "8", "activation": "relu"}, {"hidden": "8,8", "activation": "tanh"},
    {"hidden": "8", "dataset": "waves"}, {"hidden": "8", "dataset": "plane", "dtype": "float32"},
    {"hidden": "8", "dataset": "spiral", "classes": 3}])
def test_the_math_of_x_1e308_is_a_json_reply_without_nan(server, settings, point):
    key = strict_json(server.call("POST", "/api/runs", settings)[2])["id"]
    status, ctype, data = server.call("POST", f"/api/runs/{key}/math", point)
    assert status in (200, 400) and ctype.startswith("application/json"), data[:300]
    strict_json(data)


def test_numbers_json_does_not_have_are_refused(server):
    key = strict_json(server.call("POST", "/api/runs", {"hidden": "4"})[2])["id"]
    for text, expected in [('{"x": NaN, "y": 0}', "NaN is not a JSON number"),
                           ('{"x": -Infinity, "y": 0}', "-Infinity is not a JSON number"),
                           ('{"x": 1e999, "y": 0}', "x must be a number in"),
                           ('{"x": ' + "9" * 5000 + ', "y": 0}', "more than 100 digits")]:
        message = json_error(*server.call("POST", f"/api/runs/{key}/math",
                                          data=text.encode()), 400)
        assert expected in message, message


def test_nan_in_a_reply_is_sent_as_null(monkeypatch):
    c = create_app().test_client()
    key = c.post("/api/runs", json={"hidden": "4"}).get_json()["id"]
    state = Run.state

    def with_nan(self, *args, **kwargs):  # a state with values JSON does not have
        out = state(self, *args, **kwargs)
        out["history"] = [{"epoch": 0, "train_loss": float("nan")}]
        out["range"] = [float("-inf"), float("inf")]
        return out

    monkeypatch.setattr(Run, "state", with_nan)
    r = c.post(f"/api/runs/{key}/step", json={"steps": 1})
    assert r.status_code == 200
    reply = strict_json(r.data)["state"]
    assert reply["history"][0]["train_loss"] is None and reply["range"] == [None, None]


def test_a_diverging_run_answers_json(server):
    key = strict_json(server.call("POST", "/api/runs", {"hidden": "16", "lr": "1e30",
                                                        "dataset": "waves"})[2])["id"]
    for _ in range(3):
        status, _, data = server.call("POST", f"/api/runs/{key}/step", {"steps": 50})
        assert status == 200
        strict_json(data)


def test_every_error_is_a_json_reply(server):
    key = strict_json(server.call("POST", "/api/runs", {"hidden": "4"})[2])["id"]
    cases = [
        (("GET", "/no/such/page"), 404, "Not Found"),
        (("GET", "/api/runs"), 405, "Method Not Allowed"),
        (("DELETE", f"/api/runs/{key}/step"), 405, "Method Not Allowed"),
        (("POST", "/api/runs/nope/step", {}), 404, "no such run"),
        (("POST", f"/api/runs/{key}/step", {"steps": 10**6}), 400, "steps must be an integer"),
        (("POST", "/api/runs", [1, 2]), 400, "the request must be a JSON object"),
    ]
    for args, expected_status, expected in cases:
        message = json_error(*server.call(*args), expected_status)
        assert expected in message, (args, message)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    conn.request("GET", "/api/runs")
    assert "POST" in conn.getresponse().getheader("Allow", ""), "a 405 says what is allowed"
    conn.close()
    for data, ctype, expected in [(b"{not json", "application/json", "not valid JSON"),
                                  (b"\xff\xfe{}", "application/json", "not UTF-8"),
                                  (b'{"steps": 1}', "text/plain", "Content-Type")]:
        message = json_error(*server.call("POST", f"/api/runs/{key}/step", data=data,
                                          content_type=ctype), 400)
        assert expected in message, message
    # a request waitress itself refuses, before the app: malformed HTTP
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b" 400 " in head.split(b"\r\n")[0] and b"application/json" in head, reply
    assert strict_json(body)["error"]


def test_a_bug_is_a_json_500_with_its_traceback_in_the_log(monkeypatch, caplog):
    c = create_app().test_client()
    key = c.post("/api/runs", json={"hidden": "4"}).get_json()["id"]

    def broken(self, steps):
        raise KeyError("W9")

    monkeypatch.setattr(Run, "advance", broken)
    r = c.post(f"/api/runs/{key}/step", json={})
    message = json_error(r.status_code, r.content_type, r.data, 500)
    assert message == "a bug in handprop (KeyError); the server's log has its traceback"
    assert any(rec.exc_info and rec.exc_info[0] is KeyError for rec in caplog.records)
    # the gate was left: the next request gets in
    monkeypatch.undo()
    assert c.post(f"/api/runs/{key}/step", json={"steps": 1}).status_code == 200
