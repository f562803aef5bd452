"""Plant bugs in the training step's wiring (and the playground's) and check
that the tests catch each.

A test that cannot fail proves nothing. Each mutant below is one plausible
wiring mistake, made in a copy of ``src/``; the pin tests of
``tests/test_step.py`` then run against that copy (it comes first on
PYTHONPATH) and must fail. The unchanged copy runs first, as the control,
and must pass.

    python tests/plant_bugs.py            # every mutant, a line each
    python tests/plant_bugs.py nesterov   # the mutants whose name has "nesterov"
    python tests/plant_bugs.py --hostile  # the defences against hostile input, against
                                          # tests/test_hostile.py (by hand: minutes)

``tests/test_plant_bugs.py`` runs the same in the test suite.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Mutant(NamedTuple):
    name: str
    file: str  # under src/handprop/
    old: str  # must occur exactly once
    new: str
    why: str
    tests: str = "tests/test_step.py"  # pytest's arguments: what must catch it


MUTANTS = [
    Mutant("penalty-without-lr", "core/network.py",
           "penalty.add_grad(name, params[name], grads[name], scale=scale,",
           "penalty.add_grad(name, params[name], grads[name], scale=1.0,",
           "backward adds the penalty's gradient without the learning-rate factor"),
    Mutant("backward-without-dropout", "core/network.py",
           "                     masks=masks, label_smoothing=label_smoothing, "
           "sample_weight=sample_weight)\n    return Pass(",
           "                     masks=None, label_smoothing=label_smoothing, "
           "sample_weight=sample_weight)\n    return Pass(",
           "loss and gradients are wired with the dropout masks in forward, not backward"),
    Mutant("alpha-doubled", "estimator.py",
           "decay=0.5 * self.alpha,\n",
           "decay=self.alpha,\n",
           "the estimator's 0.5 * alpha doubled"),
    Mutant("lbfgs-alpha-doubled", "estimator.py",
           "penalty=self._elastic_net(net.L + 1), decay=0.5 * self.alpha)",
           "penalty=self._elastic_net(net.L + 1), decay=self.alpha)",
           "lbfgs minimizes a loss with alpha doubled"),
    Mutant("nesterov-plain", "train/optimizers.py",
           "p += scratch  # p += mu v - lr g",
           "p += v",
           "Nesterov's update is the plain momentum one"),
    Mutant("max-norm-first-layer-only", "train/step.py",
           "for l in range(1, self.L + 1):\n                max_norm_(",
           "for l in range(1, 2):\n                max_norm_(",
           "max-norm constrains W1 only, not every hidden layer"),
    Mutant("weights-not-in-backward", "core/network.py",
           "label_smoothing=label_smoothing, sample_weight=sample_weight)\n    return Pass(",
           "label_smoothing=label_smoothing, sample_weight=None)\n    return Pass(",
           "sample weights weight the loss but not the gradient"),
    Mutant("weights-not-in-step", "train/step.py",
           "masks=masks, label_smoothing=self.smoothing, sample_weight=wb,",
           "masks=masks, label_smoothing=self.smoothing, sample_weight=None,",
           "the step trains on unweighted minibatches"),
    Mutant("smoothing-not-in-backward", "core/network.py",
           "masks=masks, label_smoothing=label_smoothing, sample_weight=sample_weight)\n"
           "    return Pass(",
           "masks=masks, label_smoothing=0.0, sample_weight=sample_weight)\n"
           "    return Pass(",
           "label smoothing enters the loss but not the gradient"),
    Mutant("smoothing-not-in-step", "train/step.py",
           "masks=masks, label_smoothing=self.smoothing, sample_weight=wb,",
           "masks=masks, label_smoothing=0.0, sample_weight=wb,",
           "the step trains without the label smoothing it was given"),
    Mutant("dropout-not-in-step", "train/step.py",
           "            params, Xb, Tb, self.activation, self.pair, penalty, scale=scale, "
           "work=work,\n            masks=masks,",
           "            params, Xb, Tb, self.activation, self.pair, penalty, scale=scale, "
           "work=work,\n            masks=None,",
           "the step draws the hidden dropout masks but does not use them"),
    Mutant("logistic-target-unsmoothed", "core/outputs.py",
           "    G -= _smoothed(T, eps)",
           "    G -= T",
           "the logistic delta ignores the smoothed target"),
    Mutant("optimizer-told-no-scale", "train/step.py",
           "self.optimizer.step(params, result.grads, lr, scale=scale)",
           "self.optimizer.step(params, result.grads, lr)",
           "the optimizer is not told that the gradients are scaled"),
    Mutant("schedule-per-epoch", "train/runner.py",
           "            return lambda b: sched.rate(epoch + b / nb)",
           "            return lambda b: part[\"first_rate\"]",
           "a per-minibatch schedule (cosine) is read once per epoch"),
    Mutant("decay-by-batch-size", "train/step.py",
           "penalty = self._penalty(k if wb is None else float(wb.sum()))",
           "penalty = self._penalty(k)",
           "alpha's term divided by the minibatch size, not its total weight"),
    Mutant("input-mask-dropped", "train/step.py",
           "            Xb = xp.multiply(Xb, mask_in, out=work.X[:k])",
           "            pass",
           "the input dropout mask is drawn but not applied"),
    Mutant("hidden-delta-skips-mask", "core/network.py",
           "        if masks is not None and masks[l - 2] is not None:\n"
           "            G *= masks[l - 2]",
           "        if masks is not None and masks[l - 2] is not None and l == 2:\n"
           "            G *= masks[l - 2]",
           "a deep net's backward applies the dropout mask to the last hidden layer only"),
    Mutant("estimator-no-rollback", "estimator.py",
           "                self._net.params = self._last_good  # the last epoch that was finite",
           "                pass",
           "the estimator keeps diverged parameters instead of the last good ones",
           "tests/test_estimator.py -k divergence"),
    Mutant("resume-replaces-arrays", "core/network.py",
           "            self._params[name][...] = arr",
           "            self._params[name] = arr",
           "assigning parameters (as resuming does) replaces the net's arrays",
           "tests/test_training.py -k resume_copies"),
    Mutant("settings-own-default", "train/settings.py",
           '    momentum: float = _default("momentum")',
           "    momentum: float = 0.0",
           "RunSettings keeps a default of its own (momentum 0) instead of the table's",
           "tests/test_parameters.py"),
    Mutant("cli-loses-the-moons-default", "cli/train.py",
           "    net, settings = table.resolve(given, context=table.dataset_context(dataset))",
           "    net, settings = table.resolve(given)",
           "handprop train on moons-small forgets the table's epochs for two moons",
           "tests/test_parameters.py"),
    Mutant("playground-loses-its-defaults", "playground/runs.py",
           'net, run = table.resolve(values, context="playground", text=True)',
           "net, run = table.resolve(values, text=True)",
           "the playground trains with the CLI's defaults, not those the table gives it",
           "tests/test_parameters.py"),
    Mutant("sweep-loses-the-moons-default", "sweep/space.py",
           "    return parameters.resolve(values, context=context)",
           "    return parameters.resolve(values)",
           "a sweep on two moons trains with the defaults of other data",
           "tests/test_parameters.py"),
    Mutant("gpu-params-not-copied-back", "train/runner.py",
           "        self.device.to_host()\n        record = self._record(",
           "        record = self._record(",
           "after a GPU epoch the net's NumPy arrays do not receive the parameters",
           "tests/test_gpu_paths.py"),
    # the playground's server under load (tests/test_playground_load.py); the
    # load test itself (waitress's fixed threads, freed memory returned) takes a
    # minute a run, and its bugs were planted by hand
    Mutant("playground-no-gate", "playground/server.py",
           "            gate.acquire()\n            request.environ[\"handprop.gated\"] = True",
           "            pass",
           "every request runs its math at once",
           "tests/test_playground_load.py -k MAX_MATH"),
    Mutant("playground-blas-unbounded", "playground/server.py",
           "    guard.limit_blas()  # each", "    # guard.limit_blas()  # each",
           "serve leaves every request all of BLAS's threads",
           "tests/test_playground_load.py -k blas_threads"),
    Mutant("playground-no-body-limit", "playground/server.py",
           '    app.config["MAX_CONTENT_LENGTH"] = guard.MAX_BODY\n', "",
           "the app reads a body of any size",
           "tests/test_playground_load.py -k over_the_limit"),
    Mutant("playground-json-unchecked", "playground/server.py",
           "        return guard.read_json(request)", "        return request.get_json()",
           "a request's JSON is parsed without the nesting check",
           "tests/test_playground_load.py -k nested"),
    Mutant("playground-nan-sent", "playground/server.py",
           "    app.json = guard.json_provider()(app)", "    pass",
           "NaN is sent as the bare word NaN, which is not JSON",
           "tests/test_playground_load.py -k nan_in"),
    Mutant("playground-html-errors", "playground/server.py",
           "    @app.errorhandler(HTTPException)", "    @app.errorhandler(ZeroDivisionError)",
           "a missing route or method answers Flask's HTML",
           "tests/test_playground_load.py -k every_error"),
    Mutant("playground-waitress-text-errors", "playground/guard.py",
           "    server.channel_class = JSONChannel\n", "",
           "waitress's own refusals answer text/plain",
           "tests/test_playground_load.py -k every_error"),
    Mutant("playground-long-echo", "playground/server.py",
           "jsonify(error=guard.shorten(message))", "jsonify(error=message)",
           "an error message echoes a value of any length",
           "tests/test_playground_load.py -k echoed"),
    Mutant("retune-keeps-the-old-lr", "train/runner.py",
           "            self.sched.lr = new_lr\n",
           "",
           "a live change of the learning rate is recorded but not trained with",
           "tests/test_playground.py -k live_changes"),
    Mutant("playground-full-history", "playground/runs.py",
           '"history": json_safe(self.history_since(since))',
           '"history": json_safe(self.history_since(0))',
           "every step reply sends the whole history again",
           "tests/test_playground.py -k new_history"),
    Mutant("playground-label-ignored", "playground/runs.py",
           "        if label is None:\n            P = np.vstack",
           "        if True:\n            P = np.vstack",
           "the math of a point ignores the label asked for",
           "tests/test_playground.py -k k_classes"),
    Mutant("playground-delta-sign-drawn", "playground/static/app.js",
           'v = deltaOf(l)[j]; what = "δ";',
           'v = -deltaOf(l)[j]; what = "δ";',
           "the network drawing shows each delta with the wrong sign",
           "tests/test_playground_browser.py -k deltas_on_the_drawing"),
]


def _hostile(k: str) -> str:
    return f"tests/test_hostile.py -k '{k}'"


#: Bugs planted in the defences against hostile input (issue 21): each must
#: make its cases of tests/test_hostile.py fail. Run by hand, not in the
#: suite (each runs handprop in subprocesses for tens of seconds):
#: ``python tests/plant_bugs.py --hostile [NAME ...]``.
HOSTILE_MUTANTS = [
    Mutant("old-checkpoint-removed-first", "cli/train.py",
           "    pair = output_pair(plan.net[\"output\"])\n    train, valid, test = load_dataset(",
           "    pair = output_pair(plan.net[\"output\"])\n    ckpt.path_in(out).unlink("
           "missing_ok=True)\n    train, valid, test = load_dataset(",
           "train removes the old run's checkpoint before its data has loaded",
           _hostile("keeps")),
    Mutant("empty-path-taken", "cli/common.py",
           "    if not text.strip():\n        raise argparse.ArgumentTypeError(f\"expected a path",
           "    if False:\n        raise argparse.ArgumentTypeError(f\"expected a path",
           "an empty path argument means the current folder or a default",
           _hostile("empty_paths")),
    Mutant("optimizer-state-incomplete", "train/optimizers.py",
           "            _require_all(\"velocity\", velocity, shapes)",
           "            pass",
           "a checkpoint without a velocity array resumes",
           _hostile("optimizer_array")),
    Mutant("schedule-state-unchecked", "train/schedules.py",
           "checked = {name: _check_field(name, state[name]) for name in names}",
           "checked = {name: state[name] for name in names}",
           "a schedule's state is taken as it is (a negative rate, infinities)",
           _hostile("every_field and schedule")),
    Mutant("rng-state-unchecked", "train/runner.py",
           "self.rng.bit_generator.state = _checked_rng(meta[\"rng\"], self.rng)",
           "self.rng.bit_generator.state = meta[\"rng\"]",
           "a random generator's state is set without a trial",
           _hostile("every_field and rng")),
    Mutant("stopped-epoch-range-unchecked", "train/runner.py",
           "    if part[\"seconds\"] < 0 or part[\"first_rate\"] <= 0 or part[\"loss_sum\"] < 0:",
           "    if False:",
           "a stopped epoch's negative time or zero rate is taken",
           _hostile("every_field and in_epoch")),
    Mutant("run-json-unbounded", "cli/train.py",
           "    saved = parse_json(read_text(path, \"run file\"), str(path))",
           "    saved = json.loads(read_text(path, \"run file\"))",
           "run.json is parsed without the nesting and digit limits",
           _hostile("nesting and run.json")),
    Mutant("log-epoch-unchecked", "train/history.py",
           "        bad = ~((epochs >= 1) & (epochs <= INT_MAX) & (epochs == np.floor(epochs)))",
           "        bad = epochs < 1",
           "a log's epoch of 5,000 digits (inf) reaches int()",
           _hostile("nesting and log")),
    Mutant("model-loaded-twice", "core/modelfile.py",
           "np.ascontiguousarray(arrays.pop(k))",
           "np.array(arrays[k])",
           "a model's arrays are copied after they are read",
           _hostile("big_model")),
    Mutant("zip-member-read-whole", "files.py",
           "got = stream.readinto(view[done:done + (16 << 20)])",
           "got = stream.readinto(view[done:])",
           "a deflated member is read into a temporary copy, then into the array",
           _hostile("big_model")),
    Mutant("csv-read-whole", "data/datasets.py",
           "                    table = np.loadtxt(text, delimiter=delimiter,",
           "                    table = np.loadtxt([\",\".join(r) for r in list(csv.reader("
           "text.read().splitlines()))], delimiter=delimiter,",
           "a CSV's text, its lines and its cells are held while it is parsed (as by "
           "handprop 0.2's reader)",
           _hostile("csv_is_read_in_bounded")),
    Mutant("log-read-whole", "train/history.py",
           "                    table = np.loadtxt(text, delimiter=\",\",",
           "                    table = np.loadtxt([\",\".join(r) for r in list(csv.reader("
           "text.read().splitlines()))], delimiter=\",\",",
           "a log's text, lines and cells are held while it is parsed",
           _hostile("long_log")),
    Mutant("figure-checked-after-training", "cli/regions.py",
           "    check_figure_path(args.out)  # before training, not after it\n",
           "",
           "regions finds a bad --out only after training",
           _hostile("figure_format and regions")),
    Mutant("figure-checked-after-reading", "cli/curves.py",
           "    check_figure_path(args.out)  # before reading the log\n",
           "",
           "curves reads the log before checking --out",
           _hostile("figure_format and curves")),
    Mutant("ffmpeg-not-checked", "plotting.py",
           "        if not writers.is_available(\"ffmpeg\"):",
           "        if False:",
           "an .mp4 without ffmpeg fails after training",
           _hostile("mp4")),
    Mutant("regions-divergence-as-usage", "cli/regions.py",
           "                print(f\"handprop: d_h {d_h}, l2 {l2:g}: {exc}\", file=sys.stderr)\n"
           "                return 1",
           "                raise UsageError(f\"d_h {d_h}, l2 {l2:g}: {exc}\") from None",
           "a diverged regions run is reported as bad input, not as train reports it",
           _hostile("divergence_in_regions")),
    Mutant("layers-unbounded", "validate.py",
           "    if len(sizes) > MAX_LAYERS:",
           "    if False:",
           "50,000 hidden layers are taken",
           _hostile("sizes_are_bounded")),
    Mutant("training-memory-unchecked", "train/settings.py",
           "        if need > limit:\n            hidden = ",
           "        if False:\n            hidden = ",
           "a run is allocated without its memory estimate checked",
           _hostile("sizes_are_bounded and train")),
    Mutant("npz-folder-is-checkpoint", "train/checkpoint.py",
           "    if folder.suffix == \".npz\" and not folder.is_dir():",
           "    if folder.suffix == \".npz\":",
           "a run folder named NAME.npz is taken for the checkpoint file",
           _hostile("ends_in_npz")),
    Mutant("negative-sample-weight", "estimator.py",
           "            if sw.size and sw.min() < 0:",
           "            if False:",
           "a negative sample_weight reaches the penalty (\"l2_W1 must be >= 0\")",
           _hostile("negative_sample_weight")),
    Mutant("data-file-is-file-check", "data/datasets.py",
           "    path = Path(path)\n    table, header = read_table(path)\n",
           "    path = Path(path)\n    if not path.is_file():\n        raise DataError(f\"{path}: "
           "no such file\")\n    table, header = read_table(path)\n",
           "a device, a folder or a link loop given as a CSV is \"no such file\"",
           _hostile("special_data_files")),
    Mutant("path-shown-raw", "files.py",
           "    return text if text.isprintable() else repr(text)",
           "    return text",
           "a newline in a file's name splits the message",
           _hostile("newline")),
    Mutant("npy-header-unbounded", "files.py",
           "            if length > MAX_NPY_HEADER:",
           "            if False:",
           "a 200 KB .npy header gets NumPy's message",
           _hostile("npy_header")),
    Mutant("lock-left-behind", "cli/train.py",
           "                if not started and not had_lock:  # removed while still held",
           "                if False:",
           "a rejected train leaves .handprop.lock in the folder",
           _hostile("no_folder_or_lock")),
    Mutant("other-scripts-floats", "cli/common.py",
           "    if not text.strip().isascii():  # float() takes other scripts' digits too\n"
           "        raise ValueError(text)",
           "    pass",
           "--lr and --eps take Arabic-Indic digits",
           _hostile("digits_of_other_scripts and (lr or eps or tol or noise or momentum)")),
    Mutant("other-scripts-lists", "cli/common.py",
           "            if not text.isascii():  # int() and float() take other scripts' digits\n"
           "                raise ValueError(text)",
           "            pass",
           "regions' --hidden, --epochs and --l2 take Arabic-Indic digits",
           _hostile("digits_of_other_scripts and regions")),
    Mutant("write-error-unnamed", "files.py",
           "    return exc.errno is not None and exc.filename in (None, tmp)",
           "    return False",
           "a full or read-only disk is reported without the file's name",
           _hostile("full_or_read_only")),
    Mutant("sighup-ignored", "train/checkpoint.py",
           "(\"SIGINT\", \"SIGTERM\", \"SIGHUP\")",
           "(\"SIGINT\", \"SIGTERM\")",
           "closing the terminal kills the run in its epoch",
           _hostile("sighup")),
    Mutant("download-unbounded", "data/datasets.py",
           "        if self.size > self.limit:",
           "        if False:",
           "a mirror may send any number of bytes",
           _hostile("never_ends")),
    Mutant("download-unchecked", "data/datasets.py",
           "registry={f\"{name}.gz\": f\"sha256:{sha256}\"}",
           "registry={f\"{name}.gz\": None}",
           "a download is kept without its checksum checked",
           _hostile("checked_before")),
    Mutant("download-over-http", "data/datasets.py",
           "    if parts.scheme == \"https\":\n        return True",
           "    if parts.scheme in (\"https\", \"http\"):\n        return True",
           "a mirror over plain HTTP (or a redirect to one) is used",
           _hostile("plain_http")),
]


def _copy_with(mutant: Mutant | None, folder: Path) -> Path:
    src = folder / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("*.egg-info",
                                                                     "__pycache__"))
    if mutant is not None:
        path = src / "handprop" / mutant.file
        text = path.read_text()
        if text.count(mutant.old) != 1:
            raise RuntimeError(f"mutant {mutant.name}: the text to change occurs "
                               f"{text.count(mutant.old)} times in {mutant.file}, not once")
        path.write_text(text.replace(mutant.old, mutant.new))
    return src


def run(mutant: Mutant | None, tests: str | None = None) -> tuple[int, list[str]]:
    """Run ``tests`` (by default the mutant's, or test_step.py) against a copy
    of src/ with ``mutant`` planted (None: the control). Returns pytest's exit
    status and the failed tests."""
    tests = tests or (mutant.tests if mutant is not None else Mutant.tests)
    with tempfile.TemporaryDirectory(prefix="handprop-mutant-") as tmp:
        src = _copy_with(mutant, Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(src)}
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf",
             *shlex.split(tests)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        check = subprocess.run([sys.executable, "-c", "import handprop; print(handprop.__file__)"],
                               env=env, capture_output=True, text=True, cwd=tmp)
        if not check.stdout.startswith(str(src)):
            raise RuntimeError(f"the copy was not the one imported: {check.stdout}")
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in r.stdout.splitlines()
              if line.startswith("FAILED ")]
    return r.returncode, failed


def main(argv: list[str]) -> int:
    pool = HOSTILE_MUTANTS if "--hostile" in argv else MUTANTS
    argv = [a for a in argv if a != "--hostile"]
    chosen = [m for m in pool if not argv or any(a in m.name for a in argv)]
    for tests in sorted({m.tests for m in chosen}):
        status, failed = run(None, tests)
        print(f"control (no bug planted), {tests}: pytest exit {status}, {len(failed)} failed")
        if status != 0:
            return 1
    missed = 0
    for m in chosen:
        status, failed = run(m)
        caught = status == 1 and failed
        missed += not caught
        first = failed[0] if failed else "-"
        print(f"{m.name:<28} {'caught' if caught else 'MISSED'}: {len(failed):>3} tests failed, "
              f"e.g. {first}  ({m.why})")
    print(f"{len(chosen) - missed} of {len(chosen)} planted bugs caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
