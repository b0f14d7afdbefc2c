"""The book's plots: data in (tables and per-label frames), axes out."""
from __future__ import annotations

import io
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .figure_data import SHOTS, SHOTS_ALL, convergence_epoch, norm_targets, ordinality, per_label
from .naming import METRIC_NAMES, SHOT_NAMES, format_ordinality
from .ridge import label_norms, ridge_weight_norm, shared_ridge_fit


SHOT_COLORS = {"all": "#555555", "many": "#2b6ca3", "median": "#e08a00", "few": "#c0392b"}
#: the width of the pages' figures: a page's main column (about 680 px at 1280) shows a figure of
#: this width at 110 dpi at 0.8x, so 8 pt text stays above :data:`MIN_TEXT_PX`
PAGE_WIDTH_IN = 7.6


# ----------------------------------------------------------------------------------- Fig. 1
def plot_shot_errors(table: pd.DataFrame, metric: str, *, title: Optional[str] = None, ax=None,
                     paper: Optional[dict] = None, paper_label: str = "the paper (transcribed)"):
    """The paper's Fig. 1: one group of bars per run (All / Many / Median / Few test error), error
    bars = std over seeds. ``paper``: ``{run label: {shot: value}}``, the paper's own numbers for
    the same method, drawn as open black diamonds on the bars they match. Returns the figure."""
    import matplotlib.pyplot as plt
    if table.empty:
        raise ValueError("no rows to plot (no run records)")
    labels = list(dict.fromkeys(table["label"]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 4.0))
    else:
        fig = ax.figure
    width = 0.8 / len(SHOTS_ALL)
    x = np.arange(len(labels))
    for j, shot in enumerate(SHOTS_ALL):
        sub = table[table["shot"] == shot].set_index("label").reindex(labels)
        mean = sub[f"{metric}_mean"].to_numpy(dtype=float)
        std = sub[f"{metric}_std"].to_numpy(dtype=float)
        ax.bar(x + (j - 1.5) * width, mean, width, color=SHOT_COLORS[shot], label=SHOT_NAMES[shot],
               yerr=np.where(np.isnan(std), 0.0, std), capsize=2.5, error_kw={"lw": 1, "alpha": 0.8},
               edgecolor="white", linewidth=0.5)
        if paper:
            pv = np.array([(paper.get(lab) or {}).get(shot, np.nan) for lab in labels], dtype=float)
            ax.plot(x + (j - 1.5) * width, pv, "D", mfc="none", mec="black", ms=5, mew=1.1,
                    label=paper_label if j == 0 else None)
    ax.set_xticks(x)
    tilt = len(labels) > 6
    ax.set_xticklabels(labels, rotation=20 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel(f"test {METRIC_NAMES.get(metric, metric)}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(ncol=5 if paper else 4, fontsize=9, frameon=False, loc="upper left")
    ymax = np.nanmax((table[f"{metric}_mean"] + table[f"{metric}_std"].fillna(0)).to_numpy(dtype=float))
    if paper:
        vals = [v for d in paper.values() for v in d.values() if v == v]
        ymax = max([ymax] + vals)
    if np.isfinite(ymax) and ymax > 0:
        ax.set_ylim(0, ymax * 1.18)
    if title:
        ax.set_title(title, fontsize=10.5)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------- Figs. 2 / 5
def shot_spans(labels, shots) -> List[Tuple[float, float, str]]:
    """Contiguous label ranges of one shot: ``[(lo, hi, shot)]`` with edges half-way between
    neighbouring labels (half the median spacing beyond the ends)."""
    labels = np.asarray(labels, dtype=np.float64)
    shots = np.asarray(shots).astype(str)
    if labels.shape != shots.shape:
        raise ValueError("labels and shots differ in length")
    if len(labels) == 0:
        return []
    o = np.argsort(labels, kind="stable")
    labels, shots = labels[o], shots[o]
    step = float(np.median(np.diff(labels))) if len(labels) > 1 else 1.0
    mids = (labels[1:] + labels[:-1]) / 2
    edges = np.concatenate([[labels[0] - step / 2], mids, [labels[-1] + step / 2]])
    spans = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or shots[i] != shots[start]:
            spans.append((float(edges[start]), float(edges[i]), str(shots[start])))
            start = i
    return spans


def plot_norm_mae(ax, df: pd.DataFrame, *, title: str = "", score: Optional[dict] = None,
                  targets: Optional[pd.DataFrame] = None, line_color: str = "#c0392b",
                  norm_max: Optional[float] = None, mae_max: Optional[float] = None):
    """One panel of Fig. 2 / 5: bars = per-label training MAE (left axis), line = per-label
    prototype norm (right axis), shot regions shaded, the ordinality score under the title,
    phase 2's predicted norms dashed (``targets``). Returns the right axis."""
    for lo, hi, s in shot_spans(df["label"], df["shot"]):
        ax.axvspan(lo, hi, color=SHOT_COLORS.get(s, "#999999"), alpha=0.2, lw=0)
    widths = float(np.median(np.diff(df["label"]))) if len(df) > 1 else 1.0
    ax.bar(df["label"], df["mae"], width=widths * 0.85, color="#8c8c8c", alpha=0.75, zorder=2)
    ax.set_ylabel("training MAE per label", fontsize=8.5)
    if mae_max is not None and np.isfinite(mae_max) and mae_max > 0:
        ax.set_ylim(0, mae_max)
    ax2 = ax.twinx()
    ax2.plot(df["label"], df["proto_norm"], color=line_color, lw=1.6, zorder=3)
    if targets is not None and "predicted_norm" in targets:
        t = targets[np.asarray(targets["count"]) > 0] if "count" in targets else targets
        ax2.plot(t["label"], t["predicted_norm"], color=line_color, lw=1.1, ls="--", zorder=3)
    ax2.set_ylabel("prototype norm", fontsize=8.5, color=line_color)
    ax2.tick_params(axis="y", colors=line_color, labelsize=8)
    ax.tick_params(labelsize=8)
    if norm_max is not None and np.isfinite(norm_max) and norm_max > 0:
        ax2.set_ylim(0, norm_max)
    else:
        ax2.set_ylim(bottom=0)
    ax.set_xlabel("training label", fontsize=8.5)
    head = title
    if score is not None:
        # two short lines: one long line runs into the neighbouring panels' titles
        head += ("\n" if head else "") + format_ordinality(score).replace("; ", "\n")
    ax.set_title(head, fontsize=9)
    return ax2


def plot_panel_grid(items: Sequence[tuple], *, ncols: int = 3, line_color: str = "#c0392b",
                    suptitle: Optional[str] = None, shared_scale: bool = False, panel_size=(3.8, 3.2)):
    """A grid of :func:`plot_norm_mae` panels from ``(title, per_label frame, ordinality score,
    phase-2 targets or None)`` items, with one legend below. At most :data:`PAGE_WIDTH_IN` wide
    (fewer columns when the panels would not fit), so that a page's column shows the text at a
    readable size."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    if not items:
        raise ValueError("no panels to plot (no run records)")
    n = len(items)
    ncols = max(1, min(ncols, n, int(PAGE_WIDTH_IN // panel_size[0])))
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.7),
                             squeeze=False)
    nmax = mmax = None
    if shared_scale:
        nmax = 1.08 * max(float(np.nanmax(f["proto_norm"])) for _, f, _, _ in items)
        mmax = 1.08 * max(float(np.nanmax(f["mae"])) for _, f, _, _ in items)
    for k, (t, df, sc, tg) in enumerate(items):
        plot_norm_mae(axes[k // ncols][k % ncols], df, title=t, score=sc, targets=tg,
                      line_color=line_color, norm_max=nmax, mae_max=mmax)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    handles = [Patch(color="#8c8c8c", alpha=0.75, label="training MAE (left)"),
               Line2D([], [], color=line_color, lw=1.6, label="prototype norm (right)")]
    if any(tg is not None for _, _, _, tg in items):
        handles.append(Line2D([], [], color=line_color, lw=1.1, ls="--",
                              label="phase-2 predicted norm $\\hat{l}$"))
    handles += [Patch(color=SHOT_COLORS[s], alpha=0.3, label=f"{s}-shot labels") for s in SHOTS]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=8.5,
               frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    legend_rows = -(-len(handles) // 3)
    fig.tight_layout(rect=(0, (0.3 + 0.22 * legend_rows) / (panel_size[1] * nrows + 0.7), 1,
                           0.97 if suptitle else 1))
    return fig


def plot_norm_grid(panels: Sequence[Tuple[str, dict]], *, phase: Optional[str] = None, ncols: int = 3,
                   line_color: str = "#c0392b", suptitle: Optional[str] = None, show_targets: bool = True,
                   shared_scale: bool = False):
    """Figs. 2 and 5: a grid of :func:`plot_norm_mae` panels, one per ``(title, run record)``
    (the record's final phase unless ``phase``; phase 2's targets dashed when ``show_targets``)."""
    items = [(t, per_label(r, phase), ordinality(r, phase), norm_targets(r) if show_targets else None)
             for t, r in panels]
    return plot_panel_grid(items, ncols=ncols, line_color=line_color, suptitle=suptitle,
                           shared_scale=shared_scale)


# ----------------------------------------------------------------------------------- Fig. 3
def log_ticks(ax, nbins: int = 7) -> None:
    """A logarithmic y axis labelled in plain numbers. Over less than ~1.5 decades the labels are
    evenly spaced round numbers (matplotlib's default would label one or two decade marks only);
    call it after the data are drawn."""
    from matplotlib import ticker
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 30:
        ticks = [t for t in ticker.MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
                 if lo <= t <= hi and t > 0]
        ax.yaxis.set_major_locator(ticker.FixedLocator(ticks))
        ax.set_ylim(lo, hi)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    # the labels at the page's text size, not the log axis' smaller default
    ax.tick_params(axis="y", which="major", labelsize=9)


def plot_training_curves(curves: pd.DataFrame, *, title: Optional[str] = None, tol: float = 0.1,
                         log: bool = True):
    """Fig. 3: per-shot training MAE over epochs (left) and validation MAE (right); a marker at
    the epoch each shot's training curve settles (:func:`convergence_epoch`). ``log``: logarithmic
    MAE axis (default; the first epochs' errors would otherwise flatten the late gap between the
    shots that the figure is about)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, 3.6), sharex=True)
    for s in SHOTS:
        c = curves[curves["shot"] == s].sort_values("epoch")
        axes[0].plot(c["epoch"], c["train_mae"], color=SHOT_COLORS[s], lw=1.8, label=f"{s}-shot")
        e = convergence_epoch(c["train_mae"].to_numpy(), tol)
        if e is not None:
            y = c["train_mae"].to_numpy()[e - 1]
            axes[0].plot([c["epoch"].to_numpy()[e - 1]], [y], "o", color=SHOT_COLORS[s], ms=6,
                         mfc="white", mew=1.6)
        axes[1].plot(c["epoch"], c["val_mae"], color=SHOT_COLORS[s], lw=1.8, label=f"{s}-shot")
    axes[0].set_title("training MAE per shot\n(running, during each epoch)", fontsize=10)
    axes[1].set_title("validation MAE per shot", fontsize=10)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylabel("MAE")
        ax.grid(alpha=0.3, which="both")
        if log:
            log_ticks(ax)
        else:
            ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------- section 3.2
def plot_ridge(lam: float, slope: float, *, labels=None, base: float = 1.0, figsize=(7.6, 3.3), dpi=None):
    """Section 3.2 as two panels: (left) ``||w|| = |y| ||z|| / (||z||^2 + lam)`` against the feature
    norm for a few labels; (right) one shared ridge regressor over labels whose feature norms follow
    :func:`label_norms` with ``slope``: its predictions against the labels, and the per-label
    closed-form weights."""
    import matplotlib.pyplot as plt
    labels = np.arange(1, 11, dtype=float) if labels is None else np.asarray(labels, dtype=float)
    fig, (a, b) = plt.subplots(1, 2, figsize=figsize, dpi=dpi)
    s = np.linspace(0.0, 6.0, 301)
    cmap = plt.get_cmap("viridis")
    for k, y in enumerate((1.0, 2.0, 4.0, 8.0)):
        a.plot(s, ridge_weight_norm(y, s, lam), color=cmap(k / 3.5), lw=1.7, label=f"y = {y:g}")
    if lam > 0:
        a.axvline(math.sqrt(lam), color="#888888", ls=":", lw=1)
        a.text(math.sqrt(lam), a.get_ylim()[1] * 0.95, r" $\|z\|^2=\lambda$", fontsize=8, va="top")
    a.set_xlabel(r"feature norm $\|z\|$")
    a.set_ylabel(r"$\|w\| = |y|\,\|z\| / (\|z\|^2+\lambda)$")
    a.set_title(f"closed-form weight of one sample, λ = {lam:g}", fontsize=9.5)
    a.set_ylim(0, min(a.get_ylim()[1], 8.5))
    a.legend(fontsize=8, frameon=False)
    norms = label_norms(labels, slope, base)
    fit = shared_ridge_fit(labels, norms, lam)
    b.plot(labels, labels, color="#999999", ls="--", lw=1, label="perfect fit")
    b.plot(labels, fit["pred"], "o-", color="#c0392b", lw=1.5, ms=4,
           label=r"shared $w$: $\hat y = \|z_y\| w$")
    b.set_xlabel("label y")
    b.set_ylabel("prediction")
    b2 = b.twinx()
    b2.bar(labels, norms, width=0.6, color="#2b6ca3", alpha=0.18)
    b2.set_ylabel(r"feature norm $\|z_y\|$", color="#2b6ca3")
    b2.tick_params(axis="y", colors="#2b6ca3")
    b2.set_ylim(0, max(1.0, norms.max() * 1.6))
    b.set_zorder(b2.get_zorder() + 1)
    b.patch.set_visible(False)
    b.set_title(f"one regressor for all labels: norm slope {slope:g}, RMSE {fit['rmse']:.2f}",
                fontsize=9.5)
    b.legend(fontsize=8, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------- explorer
def plot_snapshot(snap: dict, *, title: str = "", norm_max=None, mae_max=None, figsize=(6.4, 3.4),
                  dpi=None, line_color="#c0392b"):
    """One explorer state as a figure (a :func:`plot_norm_mae` panel)."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    plot_norm_mae(ax, snap["per_label"], title=title, score=snap["ordinality"], norm_max=norm_max,
                  mae_max=mae_max, line_color=line_color)
    fig.tight_layout()
    return fig


def png_bytes(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def plot_ridge_slopes(lam: float, slopes: Sequence[float] = (0.0, 0.5, 2.0), *, labels=None,
                      base: float = 1.0, figsize=(7.6, 3.3)):
    """Section 3.2, static summary: for each norm ``slope`` (:func:`label_norms`), the feature norm
    per label (left) and the predictions of the one shared ridge regressor (right)."""
    import matplotlib.pyplot as plt
    labels = np.arange(1, 11, dtype=float) if labels is None else np.asarray(labels, dtype=float)
    fig, (a, b) = plt.subplots(1, 2, figsize=figsize)
    cmap = plt.get_cmap("viridis")
    b.plot(labels, labels, color="#999999", ls="--", lw=1, label="perfect fit")
    for k, sl in enumerate(slopes):
        c = cmap(k / max(1, len(slopes) - 1) * 0.85)
        norms = label_norms(labels, sl, base)
        fit = shared_ridge_fit(labels, norms, lam)
        a.plot(labels, norms, "o-", color=c, ms=3.5, lw=1.5, label=f"slope {sl:g}")
        b.plot(labels, fit["pred"], "o-", color=c, ms=3.5, lw=1.5,
               label=f"slope {sl:g}: RMSE {fit['rmse']:.2f}")
    a.set_xlabel("label y")
    a.set_ylabel(r"feature norm $\|z_y\|$")
    a.set_title("feature norm per label", fontsize=9.5)
    a.set_ylim(bottom=0)
    a.legend(fontsize=8, frameon=False)
    b.set_xlabel("label y")
    b.set_ylabel(r"prediction $\|z_y\|\,w$")
    b.set_title(f"one shared ridge regressor (λ = {lam:g})", fontsize=9.5)
    b.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig



# ----------------------------------------------------------------------------------- pages
#: the main column of a page at 1280 px (sphinx-book-theme), in CSS px: wider figures are shrunk
COLUMN_PX = 760
#: the smallest text a reader reads comfortably, in CSS px
MIN_TEXT_PX = 9
#: the PNG text key that carries a figure's smallest font, in px at the PNG's own size
FONT_KEY = "dirlib-min-font-px"
PAGE_DPI = 110


def min_font_px(fig, dpi: float = PAGE_DPI) -> float:
    """The smallest visible, non-empty text of ``fig`` in pixels of a PNG at ``dpi``."""
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize")
                                                   and hasattr(a, "get_text"))
             if t.get_visible() and str(t.get_text()).strip()]
    return min(sizes) * dpi / 72.0 if sizes else float("inf")


def page_png(fig, dpi: float = PAGE_DPI, metadata: Optional[dict] = None) -> bytes:
    """``fig`` as the book's pages show it: a PNG at ``dpi``, tight, with its smallest font size
    (:data:`FONT_KEY`, px at the PNG's size) in its metadata, so that the page checks can tell the
    size a reader sees once the page shrinks the image to its column."""
    smallest = min_font_px(fig, dpi)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight",
                metadata={FONT_KEY: f"{smallest:.2f}", "Software": None, **(metadata or {})})
    return buf.getvalue()


def page_setup(font_size: float = 10) -> None:
    """The pages' figure settings: ``font.size``, the page dpi, and every figure a notebook shows
    rendered by :func:`page_png` (inside IPython; elsewhere only the settings)."""
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.dpi": PAGE_DPI, "savefig.dpi": PAGE_DPI, "font.size": font_size})
    try:
        from IPython import get_ipython
        from matplotlib.figure import Figure
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None:
        try:   # the inline backend registers its own PNG formatter once, when first imported:
            import matplotlib_inline.backend_inline  # noqa: F401  (so that ours comes after it)
        except ImportError:
            pass
        ip.display_formatter.formatters["image/png"].for_type(Figure, page_png)


def rendered_font_px(png: bytes, rendered_width: float) -> float:
    """The smallest font of a :func:`page_png` image, in CSS px once shown ``rendered_width`` px
    wide (NaN for a PNG without the key)."""
    from PIL import Image
    img = Image.open(io.BytesIO(png))
    value = img.text.get(FONT_KEY) if hasattr(img, "text") else None
    if value is None:
        return float("nan")
    return float(value) * min(1.0, rendered_width / img.size[0])
