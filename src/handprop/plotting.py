"""Figures: decision regions of two-input problems and learning curves.

Figures are built with matplotlib's object API on the Agg canvas, so nothing
here needs a display or changes pyplot's global backend, and every file is
written atomically.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .core.network import MLP
from .errors import InputError
from .files import atomic_write, write_bytes
from .train.history import History

__all__ = ["check_animation_path", "check_figure_path", "decision_regions", "distortions",
           "learning_curves", "regions_animation", "save_figure"]

# Light fills for the regions, strong colours for the points, one per class.
_REGION_COLOURS = ["#a6cee3", "#fdbf6f", "#b2df8a", "#fb9a99", "#cab2d6", "#ffff99"]
_POINT_COLOURS = ["#1f78b4", "#ff7f00", "#33a02c", "#e31a1c", "#6a3d9a", "#b15928"]
_SET_COLOURS = {"train": "#1f77b4", "valid": "#ff7f0e", "test": "#2ca02c"}


def check_figure_path(path: str | os.PathLike) -> str:
    """The format of a figure's file from its suffix (png, pdf, svg, ...), or
    an error: checked before the work of drawing it (its folder must exist
    too)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    formats = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in formats:
        raise InputError(f"cannot write a figure as {path.name}: the formats are "
                         f"{', '.join(sorted(formats))}")
    if not path.parent.is_dir():
        raise OSError(f"cannot write {path}: folder {path.parent} does not exist")
    return fmt


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Render ``fig`` in the format its suffix names and write it atomically."""
    fmt = check_figure_path(path)
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format=fmt, dpi=dpi)
    write_bytes(path, buffer.getvalue())


def decision_regions(
    panels: Sequence[tuple[MLP, str]],
    X: np.ndarray,
    y: np.ndarray,
    *,
    ncols: int | None = None,
    resolution: int = 200,
    margin: float = 0.5,
    fig: Figure | None = None,
) -> Figure:
    """A grid of panels, one per trained net, each showing the class it
    predicts over the plane with the training points on top.

    Parameters
    ----------
    panels : sequence of (net, title), each net with d = 2
    X : (n, 2) training points; y : (n,) their classes
    ncols : panels per row (default: about the square root of their number)
    resolution : grid points along each axis
    margin : how far the plotted area extends beyond the points
    fig : a Figure to draw into (cleared first), as for the frames of an
        animation; by default a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not panels:
        raise InputError("decision_regions needs at least one (net, title) panel")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise InputError(f"decision regions are drawn for two inputs: X must be (n, 2), "
                         f"got {X.shape}")
    for net, _ in panels:
        if net.d != 2:
            raise InputError(f"decision regions need nets with d = 2, got d = {net.d}")
    n = len(panels)
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    lo = X.min(axis=0) - margin
    hi = X.max(axis=0) + margin
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([g0.ravel(), g1.ravel()])
    m = max(net.m for net, _ in panels)
    regions = ListedColormap(_REGION_COLOURS[:m])
    if fig is None:
        fig = Figure(figsize=(3.2 * ncols, 3.0 * nrows), layout="constrained")
    fig.clear()
    for i, (net, title) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        z = net.predict(grid).reshape(g0.shape)
        ax.contourf(g0, g1, z, levels=np.arange(m + 1) - 0.5, cmap=regions)
        for k in range(m):
            mask = y == k
            ax.scatter(X[mask, 0], X[mask, 1], s=6, color=_POINT_COLOURS[k % 6],
                       edgecolors="none")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def check_animation_path(path: str | os.PathLike) -> str:
    """The suffix of an animation's file, ".gif" or ".mp4", or an error:
    checked before the work of drawing it (its folder must exist too)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise InputError(f"an animation is written as .gif or .mp4, got {path.name}")
    if not path.parent.is_dir():
        raise OSError(f"cannot write {path}: folder {path.parent} does not exist")
    if suffix == ".mp4":
        from matplotlib.animation import writers

        if not writers.is_available("ffmpeg"):
            raise InputError(f"cannot write {path.name}: an .mp4 needs ffmpeg, which is not "
                             f"installed; write a .gif instead")
    return suffix


def regions_animation(frames: Sequence[Sequence[tuple[MLP, str]]], X: np.ndarray,
                      y: np.ndarray, path: str | os.PathLike, *, ncols: int | None = None,
                      fps: int = 5, resolution: int = 120) -> int:
    """Write an animation of decision regions, one frame per list of panels
    (see :func:`decision_regions`), with matplotlib's Pillow writer (a GIF)
    or, for an .mp4, its FFmpeg writer; atomically. Returns the frames."""
    from matplotlib.animation import FFMpegWriter, PillowWriter

    if not frames:
        raise InputError("an animation needs at least one frame")
    suffix = check_animation_path(path)
    n = len(frames[0])
    ncols = ncols or math.ceil(math.sqrt(n))
    fig = Figure(figsize=(3.2 * ncols, 3.0 * math.ceil(n / ncols)), layout="constrained")
    FigureCanvasAgg(fig)
    writer = PillowWriter(fps=fps) if suffix == ".gif" else FFMpegWriter(fps=fps)
    # matplotlib's writers take a file name, whose suffix they read: they
    # write into a private folder, and atomic_write (opened first, so that a
    # bad destination is refused before any frame is drawn) puts the bytes
    # in place.
    with atomic_write(path) as out, tempfile.TemporaryDirectory() as folder:
        movie = Path(folder) / f"animation{suffix}"
        with writer.saving(fig, str(movie), dpi=80):
            for panels in frames:
                decision_regions(panels, X, y, ncols=ncols, resolution=resolution, fig=fig)
                writer.grab_frame()
        out.write(movie.read_bytes())
    return len(frames)


def learning_curves(history: History, *, title: str | None = None) -> Figure:
    """Two panels over the epochs: the measure (error rate, or R^2 for
    regression: ``history.measure``) and the average loss, with train, valid
    and test in the colours named by the legend (sets that were not given
    are left out).
    """
    if len(history) == 0:
        raise InputError("the history is empty: no epoch to plot")
    epochs = history.column("epoch")
    fig = Figure(figsize=(10, 4), layout="constrained")
    percent = history.measure == "error"
    measure = "error rate (%)" if percent else "R\N{SUPERSCRIPT TWO}"
    for i, (what, label) in enumerate((("error", measure), ("loss", "average loss"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for split, colour in _SET_COLOURS.items():
            values = history.column(f"{split}_{what}")
            if np.all(np.isnan(values)):
                continue
            if what == "error" and percent:
                values = 100 * values
            ax.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, ms=3,
                    color=colour, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def distortions(X: np.ndarray, kinds: Sequence[str], *, n: int = 8, seed: int = 0,
                shape: tuple[int, int] = (28, 28)) -> Figure:
    """A grid of images: the first ``n`` rows of X on top, and below them one
    row of distorted versions for each entry of ``kinds`` (for instance
    "shift", "affine", "elastic", "affine,elastic").

    Parameters
    ----------
    X : (n_images, height * width), values in [0, 1]
    kinds : the augmentations to show, one row each
    """
    from .data.augment import Augmenter

    images = np.asarray(X[:n], dtype=np.float32)
    rows = [("original", images)]
    for i, kind in enumerate(kinds):
        rows.append((kind, Augmenter(kind, shape=shape)(images, np.random.default_rng(
            [seed, i]))))
    fig = Figure(figsize=(1.1 * n + 1.2, 1.15 * len(rows)), layout="constrained")
    grid = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, batch) in enumerate(rows):
        for c in range(n):
            ax = grid[r][c]
            ax.imshow(batch[c].reshape(shape), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    return fig
