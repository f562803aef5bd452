"""The playground's server, through Flask's test client: runs, steps, the
math of a point, exports, bad input, and bounded memory."""


import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("flask")

from handprop import MLP  # noqa: E402
from handprop.playground import LIMITS, PRESETS, Run, create_app, make_data  # noqa: E402
from handprop.train.training import evaluate  # noqa: E402


@pytest.fixture
def client():
    app = create_app(limit=4)
    return app.test_client(), app


def new(client, **settings):
    r = client.post("/api/runs", json=settings)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_the_page_and_its_assets_are_served(client):
    c, _ = client
    page = c.get("/")
    assert page.status_code == 200 and b'<canvas id="regions"' in page.data
    assert b"cdn" not in page.data.lower()  # the assets ship in the package
    for name in ("app.js", "style.css"):
        assert c.get(f"/static/{name}").status_code == 200
    info = c.get("/api/presets").get_json()
    assert set(info["presets"]) == {"weight decay", "hidden units", "early stopping"}


@pytest.mark.parametrize("dataset", ["moons", "circles", "xor", "spiral", "blobs"])
def test_a_run_trains_and_the_same_seed_gives_the_same_run(client, dataset):
    c, _ = client
    a = new(c, dataset=dataset, hidden="8,4", seed=3)
    b = new(c, dataset=dataset, hidden="8,4", seed=3)
    first = a["state"]["regions"]
    for run in (a, b):
        r = c.post(f"/api/runs/{run['id']}/step", json={"steps": 40})
        assert r.status_code == 200
        run["after"] = r.get_json()["state"]
    assert a["after"]["regions"] == b["after"]["regions"]  # deterministic
    assert a["after"]["history"] == b["after"]["history"]
    assert a["after"]["regions"] != first  # the regions changed
    assert a["after"]["epoch"] >= 1 and len(a["after"]["units"]) == 2


def test_training_improves_on_moons(client):
    c, _ = client
    run = new(c, dataset="moons", hidden="16", points=300)
    state = c.post(f"/api/runs/{run['id']}/step", json={"steps": 400}).get_json()["state"]
    assert state["history"][-1]["valid_error"] < 0.2 < state["history"][0]["valid_error"]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_step_is_gradient_descent_on_the_penalized_loss(momentum):
    """The run trains through handprop's step with its settings: full-batch
    steps equal v <- momentum v - lr g, W <- W + v, with g the loop reference's
    gradient, elastic net included."""
    from handprop import ElasticNet
    from handprop.playground import parse_settings

    run = Run(parse_settings({"dataset": "moons", "points": 60, "hidden": "5,3", "seed": 4,
                              "batch": 1000, "momentum": momentum, "lr": 0.3,
                              "l1": "0.01,0,0.003", "l2": "0,0.02,0.05"}))
    assert run.step.n_batches == 1
    penalty = ElasticNet.per_matrix([0.01, 0, 0.003], [0, 0.02, 0.05])
    expected = {k: v.copy() for k, v in run.net.params.items()}
    velocity = {k: np.zeros_like(v) for k, v in expected.items()}
    net = MLP(2, (5, 3), 2, dtype=np.float64)
    for _ in range(3):
        net.params = expected
        _, grads = net.loss_and_grads(run.X, run.y, penalty, method="loop")
        velocity = {k: momentum * velocity[k] - 0.3 * grads[k] for k in expected}
        expected = {k: expected[k] + velocity[k] for k in expected}
    run.advance(3)
    for k in expected:
        assert_allclose(run.net.params[k], expected[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_the_math_of_a_point_is_loss_and_grads(client):
    c, app = client
    run = new(c, hidden="6,5", activation="tanh")
    c.post(f"/api/runs/{run['id']}/step", json={"steps": 30})
    math = c.post(f"/api/runs/{run['id']}/math", json={"x": 0.3, "y": -0.2, "label": 0}
                  ).get_json()
    net = app.config["RUNS"].get(run["id"]).net
    loss, grads = net.loss_and_grads(np.array([[0.3, -0.2]]), np.array([0]))
    assert math["loss"] == pytest.approx(loss, rel=1e-12)
    for k, g in grads.items():
        assert_allclose(np.array(math["grads"][k]), g, rtol=1e-12, atol=1e-15)
    assert math["gradcheck"]["passed"] and math["gradcheck"]["max_rel_error"] < 1e-7
    assert len(math["layers"]) == 2 and len(math["layers"][1]["h_s"]) == 5


def test_exports(client, tmp_path):
    c, app = client
    run = new(c, hidden="8", l2="0.001", patience=10)
    c.post(f"/api/runs/{run['id']}/step", json={"steps": 50})
    path = tmp_path / "model.npz"
    path.write_bytes(c.get(f"/api/runs/{run['id']}/model.npz").data)
    net = MLP.load(path)
    ours = app.config["RUNS"].get(run["id"]).net
    assert all(np.array_equal(net.params[k], ours.params[k]) for k in net.params)
    csv = c.get(f"/api/runs/{run['id']}/data.csv").data.decode()
    assert csv.startswith("x1,x2,label\n") and len(csv.splitlines()) == 1 + 300 + 300
    command = c.get(f"/api/runs/{run['id']}/command").get_json()["command"]
    assert command.startswith("handprop train --dataset data.csv --hidden 8")
    assert "--l2 0.001,0.001" in command and "--patience 10" in command


@pytest.mark.parametrize("settings,message", [
    ({"l2": "-0.1"}, "l2 must be a number >= 0, got -0.1"),
    ({"hidden": str(10**9)}, "hidden: at most 4 layers of at most 128 units each"),
    ({"hidden": "8,8,8,8,8"}, "at most 4 layers"),
    ({"hidden": "x"}, "hidden must be one or more positive integers"),
    ({"points": 10**6}, "points must be an integer in"),
    ({"lr": "fast"}, "lr must be a number > 0, got 'fast'"),
    ({"dataset": "swirl"}, "dataset must be one of"),
    ({"l1": "0,0,0"}, "l1 must be one lambda, or one per weight matrix \\(2 for this net\\)"),
    ({"colour": "red"}, "unknown settings colour"),
])
def test_bad_settings_get_a_message_and_the_server_goes_on(client, settings, message):
    c, _ = client
    r = c.post("/api/runs", json=settings)
    assert r.status_code == 400
    import re

    assert re.search(message, r.get_json()["error"]), r.get_json()
    assert c.post("/api/runs", json={}).status_code == 200  # still serving


def test_malformed_requests(client):
    c, _ = client
    assert c.post("/api/runs", data="{not json", content_type="application/json"
                  ).status_code == 400
    run = new(c)
    r = c.post(f"/api/runs/{run['id']}/step", json={"steps": 10**6})
    assert r.status_code == 400 and "steps must be an integer in [1, 500]" in r.get_json()["error"]
    r = c.post(f"/api/runs/{run['id']}/math", json={"x": "a", "y": 0})
    assert r.status_code == 400
    assert c.post("/api/runs/nope/step", json={}).status_code == 404


def test_a_bug_is_not_reported_as_a_missing_run(client, monkeypatch):
    c, _ = client
    run = new(c)

    def broken(self, steps):
        raise KeyError("W9")  # a bug inside a step, not a dropped run

    monkeypatch.setattr(Run, "advance", broken)
    r = c.post(f"/api/runs/{run['id']}/step", json={})
    assert r.status_code == 500


def test_tabs_get_runs_of_their_own_and_memory_stays_bounded(client):
    c, app = client
    ids = [new(c, seed=i)["id"] for i in range(10)]
    assert len(set(ids)) == 10
    runs = app.config["RUNS"].runs
    assert len(runs) == 4 and list(runs) == ids[-4:]  # the least recently used dropped
    assert c.post(f"/api/runs/{ids[0]}/step", json={}).status_code == 404
    assert c.post(f"/api/runs/{ids[-1]}/step", json={}).status_code == 200
    # the largest run allowed is small: points and units are bounded
    from handprop.playground import parse_settings  # a run's settings come from the table

    big = Run(parse_settings({**{k: v for k, v in PRESETS["weight decay"][0].items()},
                              "dataset": "moons", "points": LIMITS["points"], "noise": 0.2,
                              "valid": 0.3, "hidden": [LIMITS["units"]] * LIMITS["layers"],
                              "activation": "relu", "l1": [0.0] * 5, "l2": [0.0] * 5,
                              "lr": 0.1, "momentum": 0.9, "batch_size": 20, "patience": 0,
                              "seed": 0}))
    size = sum(p.nbytes for p in big.net.params.values()) + big.X.nbytes
    assert size < 1 << 20


def test_early_stopping_keeps_the_best_epoch():
    from handprop.playground import parse_settings

    run = Run(parse_settings({"hidden": "100", "points": 100, "noise": 0.5, "patience": 3,
                              "lr": 0.5}))
    for _ in range(200):
        run.advance(50)
        if run.stopped:
            break
    assert run.stopped.startswith("early stopping")
    best = min(r["valid_error"] for r in run.history)
    assert evaluate(run.net, run.X_valid, run.y_valid)[0] == best


def test_data_sets_are_two_class_and_seeded():
    for kind in ("moons", "circles", "xor", "spiral", "blobs"):
        X, y = make_data(kind, 101, 0.1, 0)
        assert X.shape == (101, 2) and set(np.unique(y)) == {0, 1}
        assert np.array_equal(make_data(kind, 101, 0.1, 0)[0], X)


def test_regions_animate_writes_a_gif(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "handprop", "regions", "--hidden", "2,8",
                        "--l2", "0", "--epochs", "20", "--out", str(tmp_path / "r.png"),
                        "--animate", str(tmp_path / "r.gif")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "r.gif: 20 frames, epochs 1 to 20" in r.stdout
    from PIL import Image

    with Image.open(tmp_path / "r.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 20
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("name,message", [
    ("r.txt", "an animation is written as .gif or .mp4, got r.txt"),
    ("missing/r.gif", "folder"),
])
def test_regions_animate_refuses_a_bad_file_before_training(tmp_path, name, message):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "handprop", "regions", "--hidden", "2",
                        "--l2", "0", "--epochs", "5", "--out", str(tmp_path / "r.png"),
                        "--animate", str(tmp_path / name)], capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""  # nothing trained
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_steps_are_counted_across_epochs_and_divergence_stops_the_run():
    from handprop.playground import parse_settings

    run = Run(parse_settings({"points": 300, "valid": 0.3, "batch": 20}))
    assert len(run.X) == 210 and run.step.n_batches == 11
    run.advance(15)  # one epoch of 11 minibatches, and 4 of the next
    assert (run.epoch, run.batch, len(run.history)) == (1, 4, 2)
    run.advance(7)  # the second epoch ends exactly
    assert (run.epoch, run.batch, len(run.history)) == (2, 0, 3)
    wild = Run(parse_settings({"hidden": "128,128,128,128", "lr": 10, "points": 100}))
    wild.advance(500)
    assert wild.stopped.startswith("training diverged")
    params = {k: v.copy() for k, v in wild.net.params.items()}
    wild.advance(10)  # a stopped run stays as it is
    assert all(np.array_equal(params[k], wild.net.params[k]) for k in params)
    assert all(np.isfinite(v).all() for v in params.values())  # no update from the bad step


def test_the_command_refuses_a_bad_address_in_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    def run(*options):
        return subprocess.run([sys.executable, "-m", "handprop", "playground", "--no-browser",
                               *options], capture_output=True, text=True, timeout=60)

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cases = [(["--port", "99999"], "port must be an integer in [0, 65535], got 99999"),
                 (["--port", "-1"], "port must be an integer in [0, 65535], got -1"),
                 (["--host", "no-such-host.invalid"], "cannot serve the playground on "
                                                      "no-such-host.invalid:8050"),
                 (["--port", str(port)], f"cannot serve the playground on 127.0.0.1:{port}")]
        for options, message in cases:
            r = run(*options)
            assert r.returncode == 2 and message in r.stderr, (options, r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", options
