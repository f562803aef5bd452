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


@pytest.mark.parametrize("dataset", ["moons", "circles", "xor", "spiral", "blobs", "plane",
                                     "waves"])
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
    assert a["after"]["epoch"] >= 1
    layers = a["after"]["network"]["layers"]  # the inputs, two hidden layers, the outputs
    assert [layer["units"] for layer in layers[:3]] == [2, 8, 4] and len(layers) == 4


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
    assert command.startswith("handprop train --dataset split.npz --hidden 8")
    assert "--l2 0.001,0.001" in command and "--patience 10" in command


def test_at_epoch_0_the_command_says_to_train_first(client):
    c, _ = client
    run = new(c)
    command = c.get(f"/api/runs/{run['id']}/command").get_json()["command"]
    assert command.startswith("# no epoch trained yet") and "--epochs" not in command


@pytest.mark.parametrize("settings", [
    {"hidden": "6,5", "activation": "tanh", "l2": "0.001", "features": "x1,x2,x1x2,sinx1"},
    {"dataset": "spiral", "classes": "3", "hidden": "8", "optimizer": "adam", "lr": "0.01"},
    {"dataset": "waves", "hidden": "8", "dropout": "0.1"},
])
def test_the_exported_command_reproduces_the_run(client, tmp_path, settings):
    """split.npz and the command train the very net of the page (bit for bit:
    the same split, order, initialization, and float64 math)."""
    import shlex
    import subprocess
    import sys

    c, app = client
    run = new(c, **settings, points=100, batch_size=16)
    n_batches = app.config["RUNS"].get(run["id"]).step.n_batches
    c.post(f"/api/runs/{run['id']}/step", json={"steps": 3 * n_batches})
    (tmp_path / "split.npz").write_bytes(c.get(f"/api/runs/{run['id']}/split.npz").data)
    command = c.get(f"/api/runs/{run['id']}/command").get_json()["command"]
    assert "#" not in command and command.endswith("--epochs 3")
    args = shlex.split(command)[1:] + ["--out", "out", "--no-progress"]
    r = subprocess.run([sys.executable, "-m", "handprop", *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    trained = MLP.load(tmp_path / "out" / "model.npz")
    ours = app.config["RUNS"].get(run["id"]).net
    for k in ours.params:
        assert np.array_equal(trained.params[k], ours.params[k]), k


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
    ({"dataset": "foo"}, "dataset must be one of moons, .*, got 'foo'"),
    ({"points": "1e9"}, r"points must be an integer in \[20, 2000\], got '1e9'"),
    ({"seed": "3000000000"}, r"seed must be an integer in \[0, 2147483647\], got 3000000000"),
    ({"classes": "3"}, "moons has two classes; more are drawn by spiral, blobs"),
])
def test_bad_settings_get_a_message_and_the_server_goes_on(client, settings, message):
    """Each in one sentence that names the setting and what it takes (the
    table's words: integers written as integers, not 2.14748e+09)."""
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

    big = Run(parse_settings({"dataset": "moons", "points": LIMITS["points"], "noise": 0.2,
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
    assert set(PRESETS) == {"weight decay", "hidden units", "early stopping"}
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


# -- k classes, regression, uploads, features, live changes, incremental history --


def test_k_classes_have_their_colours_and_their_own_labels(client):
    c, app = client
    run = new(c, dataset="spiral", classes=4, hidden="16")
    state = run["state"]
    assert state["kind"] == "classes" and state["classes"] == 4 and "confidence" in state
    assert state["network"]["layers"][-1]["units"] == 4
    assert sorted(set(state["points"]["train"]["y"])) == [0, 1, 2, 3]
    # a data point's own class by default; another label when asked
    r = app.config["RUNS"].get(run["id"])
    x, y = r.P[5]
    math = c.post(f"/api/runs/{run['id']}/math", json={"x": x, "y": y}).get_json()
    assert math["label"] == int(r.y[5]) and math["nearest"] == pytest.approx([x, y])
    other = (int(r.y[5]) + 1) % 4
    again = c.post(f"/api/runs/{run['id']}/math", json={"x": x, "y": y, "label": other}
                   ).get_json()
    assert again["label"] == other and again["loss"] != math["loss"]
    loss, _ = r.net.loss_and_grads(r.inputs(np.array([[x, y]])), np.array([other]))
    assert again["loss"] == pytest.approx(loss, rel=1e-12)
    assert again["target"] == [float(k == other) for k in range(4)]


def test_regression_is_drawn_against_its_targets_and_its_math_takes_a_target(client):
    c, app = client
    run = new(c, dataset="waves", hidden="16,16")
    state = run["state"]
    assert state["kind"] == "regression" and state["measure"] == "r2"
    assert state["settings"]["output"] == "identity"
    lo, hi = state["range"]
    targets = np.concatenate([np.array(state["points"][s]["y"]) for s in ("train", "valid",
                                                                          "test")])
    assert lo <= targets.min() and hi >= targets.max()  # one scale for both
    r = app.config["RUNS"].get(run["id"])
    math = c.post(f"/api/runs/{run['id']}/math", json={"x": 0.2, "y": 0.1, "label": 0.5}
                  ).get_json()
    assert math["target"] == [0.5]
    assert math["delta_o"] == pytest.approx([math["o_s"][0] - 0.5], abs=1e-15)
    loss, grads = r.net.loss_and_grads(r.inputs(np.array([[0.2, 0.1]])), np.array([[0.5]]))
    assert math["loss"] == pytest.approx(loss, rel=1e-12)


def test_the_deltas_are_the_derivations_and_the_gradients_of_the_biases(client):
    """delta_o = o_s - t, delta_l = (W_{l+1}^T delta_{l+1}) g'(h_a_l): for one
    point they are its gradients of b_l, which loss_and_grads computes apart."""
    c, app = client
    run = new(c, hidden="6,5,4", activation="tanh", features="x1,x2,x1sq")
    c.post(f"/api/runs/{run['id']}/step", json={"steps": 30})
    math = c.post(f"/api/runs/{run['id']}/math", json={"x": 0.4, "y": -0.3, "label": 1}
                  ).get_json()
    r = app.config["RUNS"].get(run["id"])
    _, grads = r.net.loss_and_grads(r.inputs(np.array([[0.4, -0.3]])), np.array([1]))
    assert_allclose(math["delta_o"], grads["b4"], rtol=1e-12, atol=1e-15)
    for l, layer in enumerate(math["layers"], start=1):
        assert_allclose(layer["delta"], grads[f"b{l}"], rtol=1e-10, atol=1e-15)
    assert math["shapes"]["W1"] == [6, 3] and math["input"][2] == pytest.approx(0.16)
    assert set(math["gradcheck"]["per_param"]) == set(grads)


def test_features_are_the_nets_inputs(client):
    c, app = client
    run = new(c, dataset="circles", features="x1sq,x2sq", hidden="2")
    r = app.config["RUNS"].get(run["id"])
    assert r.net.d == 2
    assert_allclose(r.X, r.P ** 2, rtol=0, atol=0)
    assert run["state"]["network"]["inputs"] == ["x₁²", "x₂²"]
    run = new(c, features="x1,x2,x1sq,x2sq,x1x2,sinx1,sinx2")
    r = app.config["RUNS"].get(run["id"])
    P = r.P
    expected = np.column_stack([P[:, 0], P[:, 1], P[:, 0] ** 2, P[:, 1] ** 2, P[:, 0] * P[:, 1],
                                np.sin(P[:, 0]), np.sin(P[:, 1])])
    assert_allclose(r.X, expected, rtol=0, atol=0)
    for bad in ("", "x3", "x1,x1"):
        e = c.post("/api/runs", json={"features": bad}).get_json()["error"]
        assert e.startswith("features must be one or more of x1, x2, x1sq"), bad


def test_an_uploaded_csv_is_a_data_set(client):
    c, app = client
    rng = np.random.default_rng(0)
    P = rng.uniform(-1, 1, (120, 2))
    labels = (P[:, 0] > 0).astype(int) + (P[:, 1] > 0)
    text = "x1,x2,label\n" + "\n".join(f"{a},{b},{k}" for (a, b), k in zip(P, labels))
    up = c.post("/api/uploads", json={"csv": text}).get_json()
    assert up["points"] == 120 and up["classes"] == 3 and not up["regression"]
    run = new(c, dataset=up["name"], hidden="8")
    r = app.config["RUNS"].get(run["id"])
    assert len(r.P) + len(r.P_valid) + len(r.P_test) == 120 and r.net.m == 3
    every = np.vstack([r.P, r.P_valid, r.P_test])
    assert sorted(map(tuple, every)) == sorted(map(tuple, P))  # each point once
    assert c.post(f"/api/runs/{run['id']}/step", json={"steps": 20}).status_code == 200
    # real numbers are regression targets
    text = "\n".join(f"{a},{b},{a * b + 0.5}" for a, b in P)
    up = c.post("/api/uploads", json={"csv": text}).get_json()
    assert up["regression"] and up["classes"] is None
    assert new(c, dataset=up["name"])["state"]["kind"] == "regression"
    for csv, message in [("1,2\n" * 30, "CSV row 1: expected three numbers x1,x2,label"),
                         ("1,2,0\n" * 5, "the CSV file has 5 rows of points"),
                         ("1,2,x\n" * 30, "CSV row 1"),
                         ("\n".join(f"{i},1,{(i % 2) * 8}" for i in range(40)),
                          "the labels go up to 8")]:
        r = c.post("/api/uploads", json={"csv": csv})
        assert r.status_code == 400 and message in r.get_json()["error"], csv[:20]
    gone = c.post("/api/runs", json={"dataset": "upload-00000000"}).get_json()["error"]
    assert "is gone (the server restarted" in gone and "upload it again" in gone


def test_a_step_reply_carries_only_the_new_history():
    app = create_app()
    c = app.test_client()
    run = new(c, points=40, hidden="4")  # 28 training points: 2 minibatches an epoch
    key = run["id"]
    assert [r["epoch"] for r in run["state"]["history"]] == [0]
    assert "points" in run["state"]
    sizes = {}
    epochs = 1
    for target in (50, 4900):
        while epochs < target:
            reply = c.post(f"/api/runs/{key}/step", json={"steps": 500, "since": epochs})
            state = reply.get_json()["state"]
            assert state["history_from"] == epochs and "points" not in state
            assert [r["epoch"] for r in state["history"]] == list(range(epochs,
                                                                        state["epoch"] + 1))
            epochs = state["epoch"] + 1
            if target - epochs < 250:
                break
        reply = c.post(f"/api/runs/{key}/step", json={"steps": 2, "since": epochs})
        sizes[target] = len(reply.data)
        epochs = reply.get_json()["state"]["epoch"] + 1
    assert sizes[4900] < 1.1 * sizes[50], sizes  # no growth with the epochs


def test_live_changes_keep_the_run_and_steps_follow_the_new_values():
    """lr, momentum, the lambdas: after a change mid-run the parameters and
    the velocity stay, and each full-batch step is v <- mu v - lr g with the
    new values (g from the loop reference, with the new penalty)."""
    from handprop import ElasticNet
    from handprop.playground import parse_settings

    run = Run(parse_settings({"dataset": "moons", "points": 60, "hidden": "5,3", "seed": 4,
                              "batch_size": 1000, "momentum": 0.5, "lr": 0.3}))
    run.advance(2)
    before = {k: v.copy() for k, v in run.net.params.items()}
    velocity = {k: v.copy() for k, v in run.runner.optimizer.velocity.items()}
    run.retune({"lr": "0.05", "momentum": "0.8", "l2": "0.01,0,0.02"})
    assert run.epoch == 2 and all(np.array_equal(before[k], run.net.params[k]) for k in before)
    assert run.settings["lr"] == 0.05 and run.settings["l2"] == [0.01, 0, 0.02]
    assert [c["name"] for c in run.changes] == ["lr", "momentum", "l2"]
    penalty = ElasticNet.per_matrix([0, 0, 0], [0.01, 0, 0.02])
    net = MLP(2, (5, 3), 2, dtype=np.float64)
    expected = before
    for _ in range(2):
        net.params = expected
        _, grads = net.loss_and_grads(run.X, run.y, penalty, method="loop")
        velocity = {k: 0.8 * velocity[k] - 0.05 * grads[k] for k in expected}
        expected = {k: expected[k] + velocity[k] for k in expected}
    run.advance(2)
    for k in expected:
        assert_allclose(run.net.params[k], expected[k], rtol=1e-10, atol=1e-12, err_msg=k)
    assert [r["lr"] for r in run.history] == [0.3, 0.3, 0.3, 0.05, 0.05]


def test_a_new_batch_size_starts_with_the_next_epoch(client):
    c, app = client
    run = new(c, points=300, batch_size=20)  # 210 training points: 11 minibatches
    key = run["id"]
    c.post(f"/api/runs/{key}/step", json={"steps": 14})
    state = c.post(f"/api/runs/{key}/settings", json={"changes": {"batch_size": "70"}}
                   ).get_json()["state"]
    assert (state["epoch"], state["batch"], state["n_batches"]) == (1, 3, 11)
    state = c.post(f"/api/runs/{key}/step", json={"steps": 8}).get_json()["state"]
    assert (state["epoch"], state["batch"], state["n_batches"]) == (2, 0, 3)
    state = c.post(f"/api/runs/{key}/step", json={"steps": 4}).get_json()["state"]
    assert (state["epoch"], state["batch"], state["steps"]) == (3, 1, 11 + 11 + 3 + 1)
    assert len(state["last_batch"]["indices"]) == 70


def test_only_live_settings_change_mid_run(client):
    c, _ = client
    run = new(c)
    for changes, message in [({"hidden": "4"}, "hidden cannot change while the run trains"),
                             ({"dataset": "xor"}, "dataset cannot change while the run trains"),
                             ({"lr": "-1"}, "lr must be a number > 0"),
                             ({"l2": "1,2,3"}, "l2 must be one lambda, or one per weight "
                                               "matrix (2 for this net), got 3"),
                             ({}, "the changes must be a JSON object of settings")]:
        r = c.post(f"/api/runs/{run['id']}/settings", json={"changes": changes})
        assert r.status_code == 400 and message in r.get_json()["error"], changes
    state = c.post(f"/api/runs/{run['id']}/step", json={"steps": 1}).get_json()["state"]
    assert state["settings"]["lr"] == 0.1 and state["changes"] == []


def test_one_step_says_which_minibatch_it_trained(client):
    c, app = client
    run = new(c, points=300, batch_size=20)
    state = c.post(f"/api/runs/{run['id']}/step", json={"steps": 1}).get_json()["state"]
    r = app.config["RUNS"].get(run["id"])
    assert (state["epoch"], state["batch"]) == (0, 1)
    assert state["last_batch"]["batch"] == 0 and state["last_batch"]["epoch"] == 1
    order = r.runner.in_epoch["order"]
    assert state["last_batch"]["indices"] == order[:20].tolist()


def test_the_data_settings_and_the_table_build_the_form(client):
    c, _ = client
    info = c.get("/api/parameters").get_json()
    from handprop.playground import DATA
    from handprop.train.parameters import PARAMETERS, names_in

    assert [p["name"] for p in info["data_parameters"]] == list(DATA)
    assert [p["name"] for p in info["parameters"]] == list(names_in("playground"))
    live = {p["name"] for p in info["parameters"] if p["live"]}
    assert live == {n for n, p in PARAMETERS.items() if p.live} == \
        {"lr", "momentum", "l1", "l2", "batch_size"}
    assert set(info["shown_first"]) <= set(DATA) | set(PARAMETERS)


def test_a_huge_penalty_that_diverges_says_so_and_a_smaller_one_goes_on(client):
    c, _ = client
    run = new(c, l1="1e300")
    state = c.post(f"/api/runs/{run['id']}/step", json={"steps": 50}).get_json()["state"]
    assert state["stopped"].startswith("training diverged")
    assert "The penalty is huge (l1_W1 = 1e+300" in state["stopped"]
    assert "smaller learning rate" not in state["stopped"]
    state = c.post(f"/api/runs/{run['id']}/settings", json={"changes": {"l1": "0"}}
                   ).get_json()["state"]
    assert state["stopped"] == ""  # the rolled-back run goes on at the new value
    state = c.post(f"/api/runs/{run['id']}/step", json={"steps": 30}).get_json()["state"]
    assert state["epoch"] >= 2 and state["stopped"] == ""


def test_a_points_check_passes_tiny_entries_by_their_absolute_error(client):
    """A saturated tanh gives gradient entries near 1e-8, whose relative
    error the finite difference's own error dominates: they pass by their
    absolute error (below 1e-10); an entry that is wrong does not."""
    from handprop.core.gradcheck import ParamCheck, relative_error
    from handprop.playground.runs import ABS_TOL, _checked

    c, app = client
    run = new(c, hidden="16,16", activation="tanh")
    r = app.config["RUNS"].get(run["id"])
    for k in ("W1", "W2"):
        r.net.params[k] *= 30  # in place: saturated units
    math = c.post(f"/api/runs/{run['id']}/math", json={"x": 0.3, "y": 0.2, "label": 0}
                  ).get_json()
    check = math["gradcheck"]
    assert check["passed"] and max(check["abs_error"].values()) <= ABS_TOL
    right = np.array([1e-8, 0.5])

    def report(numerical):
        class Report:
            tol, max_rel_error, n_kinks = 1e-6, 0.0, 0
            checks = [ParamCheck("W1", (2,), np.arange(2), right, numerical,
                                 relative_error(right, numerical), np.zeros(2, bool))]
        return Report

    checked = _checked(report(right + [5e-13, 1e-12]))
    assert checked["passed"] and checked["per_param"]["W1"] > 1e-5  # 5e-13 off 1e-8
    assert not _checked(report(right * [-1, 1]))["passed"]  # a tiny entry's sign wrong
    assert not _checked(report(right * [1, 1.001]))["passed"]  # a large entry off
