"""The playground's JSON API without a browser: a run on three Gaussian blobs,
trained with Adam and dropout, then one point's passes. The same requests
work over HTTP against ``handprop playground``; here they go through Flask's
test client, so no server is started.

    python examples/playground_api.py
"""

from handprop.playground import create_app

api = create_app().test_client()
settings = {"dataset": "blobs", "classes": 3, "points": 600, "noise": 0.1, "hidden": "16,16",
            "activation": "tanh", "optimizer": "adam", "lr": "0.01", "dropout": "0.1",
            "batch_size": 30, "seed": 1}
run = api.post("/api/runs", json=settings).get_json()
key, state = run["id"], run["state"]
units = [layer["units"] for layer in state["network"]["layers"]]
print(f"a run of {state['classes']} classes, units per layer {units}")
seen = len(state["history"])
for _ in range(6):
    reply = api.post(f"/api/runs/{key}/step", json={"steps": 500, "since": seen})
    state = reply.get_json()["state"]
    new = state["history"]
    seen += len(new)
    last = new[-1]
    print(f"epoch {last['epoch']:>3}: train error {100 * last['train_error']:5.1f}%, "
          f"valid error {100 * last['valid_error']:5.1f}% ({len(new)} new records in the reply)")
math = api.post(f"/api/runs/{key}/math", json={"x": 0.2, "y": -0.3, "label": 2}).get_json()
verdict = "passed" if math["gradcheck"]["passed"] else "FAILED"
print(f"the point (0.2, -0.3), label 2: o_s = {[round(p, 4) for p in math['o_s']]}, "
      f"loss {math['loss']:.4f}, gradient check {verdict}")
