"""The book's interactive explorers: precomputed linked sliders (work in the static page) and a
live trainer (needs a kernel)."""
from __future__ import annotations

import time
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd

from .plots import plot_snapshot
from .page_runs import QUICK_SUBSET, torch_threads
from ..train import Callback


class SnapshotCallback(Callback):
    """A trainer callback that records the per-label diagnostics (prototype norms, training MAE,
    ordinality; :func:`dirlib.train.train_diagnostics`) at the end of the given epochs (1-based)."""

    name = "snapshot"

    def __init__(self, epochs: Iterable[int]):
        super().__init__()
        self.epochs = sorted({int(e) for e in epochs})
        if not self.epochs or self.epochs[0] < 1:
            raise ValueError(f"snapshot epochs must be >= 1, got {self.epochs}")
        self.snaps: Dict[int, dict] = {}

    def on_epoch_end(self, st):
        e = st.epoch + 1
        if e in self.epochs:
            from ..train import train_diagnostics
            was = st.model.training
            self.snaps[e] = train_diagnostics(st.model, st.data, st.cfg, st.device)
            st.model.train(was)


def explore_method(method: str, beta: float) -> Tuple[str, dict]:
    """``method`` with the ordinal Frobenius-norm regulariser (phase 1 of the paper,
    ``frobenius_reg``) at weight ``beta``; ``beta = 0`` is the method alone."""
    if beta < 0:
        raise ValueError(f"the regulariser weight must be >= 0, got {beta}")
    if beta == 0:
        return method, {}
    name = "frobenius_reg" if method == "vanilla" else f"{method}+frobenius_reg"
    return name, {"frobenius_reg.beta": float(beta)}


def explore_data(dataset: str, data_dir=None, *, quick: bool = True, seed: int = 0):
    """The data an explorer trains on: the whole set for synthetic data, else (quick) the
    :data:`QUICK_SUBSET` subsets."""
    from ..datasets import get
    info = get(dataset)
    kwargs = {"img_size": info.recipe["img_size"]} if info.images else {}
    data = info.load(data_dir=data_dir, **kwargs)
    if quick and not info.small:
        data = data.subset(QUICK_SUBSET["subset_train"], QUICK_SUBSET["subset_eval"], seed=seed)
    return data


def explore_run(data, method: str, *, beta: float = 0.0, epochs: int = 10,
                snapshots: Optional[Sequence[int]] = None, seed: int = 0, device: str = "cpu",
                threads: Optional[int] = 1) -> dict:
    """Train ``method`` (+ the ordinal regulariser at ``beta``) on ``data`` for ``epochs``. Returns
    ``{"snapshots": {epoch: {"per_label": DataFrame, "ordinality": dict}}, "test": metrics,
    "method": name, "method_kwargs": {...}}`` with snapshots at the ``snapshots`` epochs (default:
    the last). Single-phase methods only (``frobenius``, ``rrt`` ... have their own phases)."""
    from .page_runs import make_config
    from ..methods import build_method
    from ..train import fit
    name, mk = explore_method(method, beta)
    snaps = sorted(set(snapshots or [epochs]))
    if snaps[-1] > epochs:
        raise ValueError(f"snapshot epoch {snaps[-1]} > epochs {epochs}")
    # ``data`` is what the explorer trains on (already the quick subset): no cap, no subset here
    cfg = make_config(data.name, name, seed=seed, epochs=epochs, quick=True, device=device,
                      method_kwargs=mk, diagnostics=False, max_batches=None, subset_train=None,
                      subset_eval=None)
    spec = build_method(cfg, data)
    if spec.phases is not None:
        raise ValueError(f"{method!r} is a multi-phase method; the explorer trains single-phase "
                         "methods (the regulariser slider adds the paper's phase 1)")
    cb = SnapshotCallback(snaps)
    spec.callbacks.append(cb)
    with torch_threads(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = fit(cfg, data, spec)
    out = {}
    for e, d in cb.snaps.items():
        df = pd.DataFrame(d["per_label"]).sort_values("label").reset_index(drop=True)
        out[e] = {"per_label": df, "ordinality": d["ordinality"]}
    return {"snapshots": out, "test": res["test"], "method": name, "method_kwargs": mk}


def linked_explorer(images: Dict[tuple, bytes], axes: Sequence[Tuple[str, Sequence]], *,
                    width: str = "640px", description_width: str = "150px",
                    start: Optional[Sequence] = None):
    """Precomputed states switched in the browser without a kernel: one control per axis
    (``(description, values)``: a dropdown for text values, a selection slider for numbers), each
    ``jslink``-ed to the ``selected_index`` of the ``Stack`` level it selects; the leaves are
    ``Image`` widgets of ``images[(v1, v2, ...)]``. Works in the static page (saved widget state +
    the widget manager JS) and with a live kernel alike. Returns a ``VBox``."""
    import ipywidgets as W
    axes = [(d, list(v)) for d, v in axes]
    if not axes:
        raise ValueError("no axes")
    for d, vals in axes:
        if not vals:
            raise ValueError(f"axis {d!r} has no values")
    keys = [()]
    for _, vals in axes:
        keys = [k + (v,) for k in keys for v in vals]
    missing = [k for k in keys if k not in images]
    if missing:
        raise ValueError(f"{len(missing)} state(s) without an image, e.g. {missing[0]}")
    # the state shown first (``start``: one value per axis, e.g. the one the page's text uses)
    start = list(start) if start is not None else [vals[0] for _, vals in axes]
    if len(start) != len(axes) or any(v not in vals for v, (_, vals) in zip(start, axes)):
        raise ValueError(f"start {start} must give one value of each axis")
    first = [vals.index(v) for v, (_, vals) in zip(start, axes)]
    style = {"description_width": description_width}
    controls = []
    for (d, vals), v0 in zip(axes, start):
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            c = W.SelectionSlider(options=[(f"{v:g}", v) for v in vals], value=v0,
                                  description=d, style=style, continuous_update=True,
                                  layout=W.Layout(width="100%", max_width=width))
        else:
            c = W.Dropdown(options=[(str(v), v) for v in vals], value=v0, description=d,
                           style=style, layout=W.Layout(width="100%", max_width=width))
        controls.append(c)
    levels: List[list] = [[] for _ in axes]

    def build(depth, prefix):
        if depth == len(axes):
            return W.Image(value=images[prefix], format="png", layout=W.Layout(width="100%", max_width=width))
        kids = [build(depth + 1, prefix + (v,)) for v in axes[depth][1]]
        st = W.Stack(children=kids, selected_index=first[depth])
        levels[depth].append(st)
        return st

    root = build(0, ())
    links = []
    for c, stacks in zip(controls, levels):
        for st in stacks:
            links.append(W.jslink((c, "index"), (st, "selected_index")))
    box = W.VBox(controls + [root], layout=W.Layout(width="100%", max_width=width))
    box._dirlib_links = links   # keep the link widgets referenced (their models are in the state)
    return box


def live_explorer(load_data: Callable[[str], object], datasets: Sequence[str], methods: Sequence[str],
                  *, epochs: int = 10, betas: Sequence[float] = (0.0, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0),
                  seed: int = 0, device: str = "cpu", width: str = "420px"):
    """Controls that train for real (a live kernel is needed: the button calls Python): dataset,
    method, epochs and regulariser weight, a *train* button and an output area that shows the
    resulting :func:`plot_snapshot` and test MAE. ``load_data(name)`` returns the data (cache it).
    The returned ``VBox`` has ``.run()``: train with the current settings, draw into the output,
    return the :func:`explore_run` result (the button calls it)."""
    import ipywidgets as W
    style = {"description_width": "150px"}
    lay = W.Layout(width="100%", max_width=width)   # shrinks with a narrow column
    ds = W.Dropdown(options=list(datasets), value=datasets[0], description="dataset", style=style, layout=lay)
    me = W.Dropdown(options=list(methods), value=methods[0], description="method", style=style, layout=lay)
    ep = W.IntSlider(value=epochs, min=1, max=max(50, epochs), description="epochs", style=style, layout=lay)
    be = W.SelectionSlider(options=[(f"{b:g}", b) for b in betas], value=betas[0],
                           description="regulariser weight β", style=style, layout=lay)
    btn = W.Button(description="train", button_style="primary", icon="play")
    status = W.HTML(value="<i>needs a live kernel: press train</i>")
    out = W.Output()
    box = W.VBox([ds, me, ep, be, W.HBox([btn, status]), out], layout=W.Layout(width="100%", max_width=width))

    def run(*_):
        import matplotlib.pyplot as plt
        status.value = "<i>training ...</i>"
        t0 = time.time()
        try:
            data = load_data(ds.value)
            res = explore_run(data, me.value, beta=float(be.value), epochs=int(ep.value), seed=seed,
                              device=device)
        except Exception as e:  # shown in the widget, not swallowed
            status.value = f"<b>error:</b> {type(e).__name__}: {e}"
            raise
        e = max(res["snapshots"])
        snap = res["snapshots"][e]
        out.clear_output(wait=True)
        with out:
            plot_snapshot(snap, title=f"{ds.value}: {res['method']} (β = {float(be.value):g}), epoch {e}")
            plt.show()
        status.value = (f"done in {time.time() - t0:.1f} s; test MAE {res['test']['all']['mae']:.3f}; "
                        f"Spearman {snap['ordinality']['spearman']:.3f}")
        return res

    btn.on_click(run)
    box.run = run
    box.controls = {"dataset": ds, "method": me, "epochs": ep, "beta": be}
    return box

