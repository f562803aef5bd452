"""The results of a study: the best trials, Optuna's plots, and the best trial
retrained and tested once."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from .space import _context
from .storage import _optuna, make_storage
from .workers import SweepConfig, load_data, space_output, train_params

# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def summarize(config: SweepConfig, *, top: int = 10, out=sys.stdout) -> dict:
    """Print the best trials, draw Optuna's plots, retrain the best trial on
    train, save it, and report its test error (the only use of the test set)."""
    optuna = _optuna()
    from ..train.training import evaluate

    pair = space_output(config.space)
    score = "valid error" if pair.classifies else "valid loss"

    def shown(v: float) -> str:
        return f"{100 * v:.2f}%" if pair.classifies else f"{v:.4g}"

    storage = make_storage(config.storage, heartbeat=config.heartbeat)
    study = optuna.load_study(study_name=config.study, storage=storage)
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == state.COMPLETE]
    counts = dict.fromkeys(("complete", "pruned", "failed", "interrupted (run again)",
                            "lost (their worker died)", "running", "waiting",
                            "not run (over the budget)"), 0)
    for t in trials:
        counts[_outcome(t)] += 1
    print(f"study {config.study!r} in {config.storage}: " + ", ".join(
        f"{n} {k}" for k, n in counts.items() if n), file=out)
    if not complete:
        failed = [t for t in trials if t.state == state.FAIL and "error" in t.user_attrs]
        if failed:
            raise InputError(f"no trial completed: {len(failed)} failed by their "
                             f"hyper-parameters (trial {failed[0].number}: "
                             f"{failed[0].user_attrs['error']})"[:500])
        raise InputError("no trial has completed yet: nothing to summarize")
    ranked = sorted(complete, key=lambda t: t.value)
    names = sorted({k for t in complete for k in t.params if not k.endswith("_is_zero")})
    print(file=out)
    print(f"| trial | {score} | epochs | " + " | ".join(names) + " |", file=out)
    print("|---:|---:|---:|" + "---|" * len(names), file=out)
    for t in ranked[:top]:
        values = [_fmt(t.user_attrs.get("params", {}).get(k, t.params.get(k))) for k in names]
        print(f"| {t.number} | {shown(t.value)} | {t.user_attrs.get('epochs_run', '')} | "
              + " | ".join(values) + " |", file=out)
    folder = Path(config.out)
    figures = _plots(study, folder, out)
    best = ranked[0]
    params = best.user_attrs["params"]
    data = load_data(config)
    net, history = train_params(params, data, seed=config.seed + best.number,
                                device=config.device, context=_context(config.dataset))
    test_measure, test_loss = evaluate(net, *data[2])
    net.save(folder / "best_model.npz", history=history.to_dicts(), settings=params,
             study=config.study, trial=best.number, dataset=config.dataset,
             label=config.label)
    print(file=out)
    again = float(np.nanmin(history.column("valid_error" if pair.classifies else
                                           "valid_loss")))
    print(f"best trial {best.number}: {score} {shown(best.value)}; retrained on train "
          f"with its seed ({score} {shown(again)} again) and saved to "
          f"{folder / 'best_model.npz'}", file=out)
    test = (f"test error of the best trial: {100 * test_measure:.2f}%" if pair.classifies
            else f"test R2 of the best trial: {test_measure:.4f}")
    print(f"{test} (average loss {test_loss:.4f}); the test set was used for this number "
          f"only", file=out)
    if figures:
        print(f"wrote {', '.join(figures)}", file=out)
    return {"best": best, "worst": ranked[-1], "data": data, "test_error": test_measure}


def _plots(study, folder: Path, out) -> list[str]:
    """Optuna's optimization history and parameter importances, as PNG files
    in ``folder``; a plot Optuna cannot draw is said so in a line."""
    import matplotlib

    from ..plotting import save_figure

    matplotlib.use("Agg")  # Optuna draws with pyplot; never open a window
    from optuna.visualization import matplotlib as ovm

    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's plots are "experimental" too
        for name, plot in (("optimization_history", ovm.plot_optimization_history),
                           ("param_importances", ovm.plot_param_importances)):
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                print(f"({name} not drawn: {exc})", file=out)
                continue
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            save_figure(fig, folder / f"{name}.png")
            figures.append(str(folder / f"{name}.png"))
    return figures


def _outcome(trial) -> str:
    """How a trial ended, in the words of the summary."""
    state = _optuna().trial.TrialState
    if trial.user_attrs.get("over_budget"):  # handprop 0.2's studies
        return "not run (over the budget)"
    if trial.state == state.FAIL:
        if "error" in trial.user_attrs:
            return "failed"
        if "interrupted" in trial.user_attrs:
            return "interrupted (run again)"
        return "lost (their worker died)"
    return trial.state.name.lower()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
