"""The figures of the playground's comparisons (its presets), measured: each
preset's runs trained as the page trains them (the same settings, the
server's own Run), to the preset's epochs or until early stopping ends one.

    python examples/playground_presets.py            # every preset
    python examples/playground_presets.py "weight decay"

docs/playground.md shows its output.
"""

import sys

from handprop.playground import PRESETS, Run, parse_settings


def measure(name: str) -> None:
    preset = PRESETS[name]
    print(f"{name}: {preset['claim']}")
    for settings in preset["runs"]:
        run = Run(parse_settings({**preset["data"], **settings}))
        while not run.stopped:
            run.advance(500)
        last = run.history[-1]
        best = min(run.history[1:], key=lambda r: r["valid_error"])
        label = ", ".join(f"{k} {v}" for k, v in settings.items())
        print(f"  {label:<26} epoch {run.epoch:>4}: train {last['train_error']:6.1%} "
              f"(loss {last['train_loss']:.3f}), valid {last['valid_error']:6.1%} "
              f"(loss {last['valid_loss']:.3f}), test {last['test_error']:6.1%}; "
              f"best valid {best['valid_error']:.1%} at epoch {best['epoch']}"
              + (f"; kept epoch {run.runner.best_epoch}" if run.runner.best_epoch
                 and run.settings.get("patience") else ""))


if __name__ == "__main__":
    for name in sys.argv[1:] or PRESETS:
        measure(name)
