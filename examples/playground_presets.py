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
        kept = run.runner.best_epoch if run.settings.get("patience") else None
        last = run.history[kept if kept else -1]  # the epoch whose parameters the net has
        label = ", ".join(f"{k} {v}" for k, v in settings.items())
        print(f"  {label:<24} epoch {last['epoch']:>4}{' (kept)' if kept else '':7}: "
              f"train {last['train_error']:5.1%} (loss {last['train_loss']:.2f}), valid "
              f"{last['valid_error']:5.1%} (loss {last['valid_loss']:.2f}), test "
              f"{last['test_error']:5.1%}" + (f"; stopped at {run.epoch}" if kept else ""))


if __name__ == "__main__":
    for name in sys.argv[1:] or PRESETS:
        measure(name)
