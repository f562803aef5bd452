"""Figures render and are written as valid PNG files."""

import math

import numpy as np
import pytest

from handprop import MLP
from handprop.data.datasets import moons_splits
from handprop.plotting import decision_regions, learning_curves, save_figure
from handprop.train.training import EpochRecord, History

PNG = b"\x89PNG\r\n\x1a\n"


def test_decision_regions_grid(tmp_path):
    (X, y), _, _ = moons_splits(n_train=50, n_valid=2, n_test=2)
    panels = [(MLP(2, h, 2, seed=h), f"d_h={h}") for h in (2, 5, 10, 20)]
    fig = decision_regions(panels, X, y, ncols=2, resolution=30)
    axes = fig.get_axes()
    assert len(axes) == 4
    assert [a.get_title() for a in axes] == ["d_h=2", "d_h=5", "d_h=10", "d_h=20"]
    save_figure(fig, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == PNG


def test_decision_regions_rejects_non_planar_input():
    with pytest.raises(ValueError, match="nets with d = 2"):
        decision_regions([(MLP(3, 2, 2), "x")], np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"X must be \(n, 2\)"):
        decision_regions([(MLP(2, 2, 2), "x")], np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        decision_regions([], np.zeros((4, 2)), np.zeros(4))


def test_learning_curves(tmp_path):
    nan = math.nan
    history = History([EpochRecord(e, 0.5 / e, 1.0 / e, 0.6 / e, 1.1 / e, nan, nan, 0.1, 0.01)
                       for e in range(1, 6)])
    fig = learning_curves(history, title="t")
    error_ax, loss_ax = fig.get_axes()
    assert [t.get_text() for t in error_ax.get_legend().get_texts()] == ["train", "valid"]
    assert loss_ax.get_ylabel() == "average loss"
    colours = {line.get_label(): line.get_color() for line in error_ax.get_lines()}
    assert len(set(colours.values())) == 2
    assert list(error_ax.get_lines()[0].get_ydata()) == pytest.approx([50, 25, 50 / 3, 12.5, 10])
    save_figure(fig, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="empty"):
        learning_curves(History())
