"""dirlib.paper.figure_data: run selection, aggregation, tables and plots on small fake-but-schema-valid run
records written into tmp_path (the per-label blocks come from dirlib.diagnostics on made-up
features), plus tiny real training runs on synthetic data for the training helpers."""
import json
import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dirlib.paper import figure_data as F  # noqa: E402
from dirlib.paper import naming, plots, ridge, widgets  # noqa: E402
from dirlib.paper.page_runs import RunSpec, Runs, cached_runs, get_runs, parse_specs, run_spec, select_records, stored_specs, train_runs  # noqa: E402
from dirlib.data import load_synthetic  # noqa: E402
from dirlib.data.base import Binning  # noqa: E402
from dirlib.diagnostics import ordinality_score, per_label_stats  # noqa: E402
from dirlib.records import stable_hash  # noqa: E402
from dirlib.paper.record_tables import paper_table  # noqa: E402
from dirlib.train import RunConfig  # noqa: E402


# ----------------------------------------------------------------------------------- fake records
def _per_label_block(seed=0, n_labels=12, flip_tail=False):
    """A train_per_label block computed by the library's own diagnostics on made-up features."""
    rng = np.random.RandomState(seed)
    counts = np.array([3, 8, 30, 120, 150, 160, 140, 110, 40, 12, 5, 2])[:n_labels]
    labels = np.repeat(np.arange(n_labels), counts).astype(float)
    scale = 1.0 + labels
    if flip_tail:
        scale = np.where(labels >= 9, 20.0 - labels, scale)
    z = rng.randn(len(labels), 4) * 0.1 + scale[:, None]
    pred = labels + rng.randn(len(labels)) * (0.2 + (counts[labels.astype(int)] < 20))
    b = Binning.integer(0, n_labels - 1)
    shots = np.where(counts > 100, "many", np.where(counts < 20, "few", "median"))
    df = per_label_stats(z, pred, labels, b, shots=shots)
    df = df[df["count"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        score = ordinality_score(df["label"].to_numpy(), df["proto_norm"].to_numpy(),
                                 shots=df["shot"].to_numpy())
    return {"per_label": df.to_dict(orient="list"), "ordinality": score}


def _metrics(rng, base, with_pearson=False):
    out = {}
    for k, s in enumerate(("all", "many", "median", "few")):
        mae = base + k + rng.rand()
        out[s] = {"n": 10 * (k + 1), "mae": mae, "mse": mae ** 2, "gm": mae * 0.6}
        if with_pearson:
            out[s]["pearson"] = 70.0 + k + rng.rand()
    return out


def fake_record(dataset="synthetic", method="vanilla", seed=0, *, loss=None, epochs=5, data_hash="dh1",
                method_kwargs=None, frobenius=False, status="completed", finished="2025-01-01T00:00:00",
                base=1.0, n_epochs_hist=6, flip_tail=False):
    cfg = RunConfig(dataset=dataset, method=method, seed=seed, loss=loss, epochs=epochs,
                    method_kwargs=dict(method_kwargs or {}), progress=False).to_dict()
    rng = np.random.RandomState(seed + 17 * len(method))
    hist = []
    for e in range(1, n_epochs_hist + 1):
        hist.append({"epoch": e, "train_loss": 1.0 / e,
                     "train_mae_running": {"many": 1.0 / e, "median": 2.0 / e + 0.1, "few": 3.0 / e + 0.5},
                     "val": {s: {"mae": v / e + 0.2} for s, v in (("all", 2), ("many", 1), ("median", 2), ("few", 4))}})
    phase = {"phase": "main", "history": hist, "train_per_label": _per_label_block(seed, flip_tail=flip_tail)}
    rec = {"schema": "dirlib.run/1", "status": status, "config": cfg, "config_hash": stable_hash(cfg),
           "data_hash": data_hash, "finished": finished, "git": {"commit": "abcdef0123456789"},
           "phases": {"main": phase}, "final": "main",
           "test": _metrics(rng, base, dataset == "sts-b-dir"), "val": _metrics(rng, base)}
    if frobenius:
        blk = _per_label_block(seed + 1)
        labels = blk["per_label"]["label"]
        rec["phases"]["norm"] = {"phase": "norm", "per_label": {
            "bin": list(range(len(labels))), "label": labels, "count": blk["per_label"]["count"],
            "shot": blk["per_label"]["shot"], "observed_norm": blk["per_label"]["proto_norm"],
            "predicted_norm": [1.0 + 0.5 * y for y in labels], "majority": [s == "many" for s in blk["per_label"]["shot"]]}}
        rec["phases"]["sft"] = {"phase": "sft", "history": hist[:2], "train_per_label": blk}
        rec["final"] = "sft"
    return rec


def write(root, rec, name=None):
    cfg = rec["config"]
    d = root / cfg["dataset"] / (name or cfg["method"].replace("+", "_")) / f"seed{cfg['seed']}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps(rec))
    return d / "run.json"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------------- run specs
def test_run_spec_loss_normalisation_matching_and_slug():
    mse = RunSpec("vanilla", "MSE", loss="mse")
    mae = RunSpec("vanilla", "MAE", loss="l1")
    plain = RunSpec("vanilla")
    assert plain.label == "Vanilla" and RunSpec("ranksim+frobenius").label == "RankSim + Ours"
    # the dataset's default loss is left None, so the run shares the plain method's configuration
    assert mae.overrides("synthetic") == {} and mse.overrides("synthetic") == {"loss": "mse"}
    assert mse.overrides("sts-b-dir") == {} and mae.overrides("sts-b-dir") == {"loss": "l1"}
    c_none = fake_record(method="vanilla")["config"]
    c_mse = fake_record(method="vanilla", loss="mse")["config"]
    c_l1 = fake_record(method="vanilla", loss="l1")["config"]
    assert mae.matches(c_none) and mae.matches(c_l1) and not mae.matches(c_mse)
    assert mse.matches(c_mse) and not mse.matches(c_none) and plain.matches(c_none)
    assert not RunSpec("lds").matches(c_none)
    kw = run_spec("frobenius_reg", method_kwargs={"frobenius_reg.beta": 2.0})
    assert not kw.matches(fake_record(method="frobenius_reg")["config"])
    assert kw.matches(fake_record(method="frobenius_reg", method_kwargs={"frobenius_reg.beta": 2.0})["config"])
    assert mse.slug("synthetic") == "vanilla__loss-mse" and mae.slug("synthetic") == "vanilla"
    assert RunSpec("ranksim+frobenius").slug("synthetic") == "ranksim_frobenius"
    assert kw.slug("synthetic").startswith("frobenius_reg__kw-")


def test_parse_specs_and_errors():
    specs = parse_specs(["vanilla@mse", "lds", "ranksim+frobenius"])
    assert [(s.method, s.loss) for s in specs] == [("vanilla", "mse"), ("lds", None), ("ranksim+frobenius", None)]
    assert specs[0].label == "Vanilla (MSE)"
    with pytest.raises(ValueError, match="unknown method component"):
        parse_specs(["vanila"])
    with pytest.raises(ValueError, match="loss 'mae' is not valid"):
        parse_specs(["vanilla@mae"])
    with pytest.raises(ValueError, match="same run twice"):
        parse_specs(["lds", "lds"])


# ----------------------------------------------------------------------------------- selection
def test_select_records_keeps_the_largest_comparable_group_and_says_what_it_dropped():
    recs = [fake_record(seed=s, epochs=5) for s in (0, 1, 2)]
    recs += [fake_record(seed=0, epochs=9)]                                   # another config: 1 seed
    recs += [fake_record(seed=1, epochs=5, finished="2026-01-01T00:00:00", base=50.0)]  # seed 1 again, later
    recs += [fake_record(seed=3, epochs=5, status="failed")]
    recs += [fake_record(method="lds", seed=0, data_hash="other")]
    out, notes = select_records(recs, [RunSpec("vanilla"), RunSpec("lds")])
    got = out["Vanilla"]
    assert [r["config"]["seed"] for r in got] == [0, 1, 2] and all(r["config"]["epochs"] == 5 for r in got)
    assert got[1]["test"]["all"]["mae"] > 50       # the later duplicate of seed 1 wins
    assert "LDS" not in out                         # its only record is on another data hash
    text = " ".join(notes)
    assert "duplicate" in text and "other configuration" in text and "data hash" in text


def test_select_records_shows_one_protocol_for_the_whole_table():
    # Vanilla has 3 seeds of a 5-epoch protocol and 1 seed of a 20-epoch one; LDS only the latter.
    recs = [fake_record(seed=s, epochs=5) for s in (0, 1, 2)] + [fake_record(seed=0, epochs=20)]
    recs += [fake_record(method="lds", seed=0, epochs=20)]
    out, notes = select_records(recs, [RunSpec("vanilla"), RunSpec("lds")])
    assert [r["config"]["epochs"] for r in out["Vanilla"]] == [20]      # not the larger 5-epoch group
    assert [r["config"]["epochs"] for r in out["LDS"]] == [20]
    assert any("2 protocols" in n for n in notes)
    out, _ = select_records(recs[:4], [RunSpec("vanilla"), RunSpec("lds")])
    assert [r["config"]["epochs"] for r in out["Vanilla"]] == [5, 5, 5]  # one spec: the most seeds


def test_cached_runs_dataset_preference_missing_and_none(tmp_path):
    write(tmp_path, fake_record("sts-b-dir", "vanilla", 0))
    write(tmp_path, fake_record("utkface-dir", "vanilla", 0))
    write(tmp_path, fake_record("utkface-dir", "vanilla", 1))
    specs = [RunSpec("vanilla"), RunSpec("ranksim")]
    runs = cached_runs(specs, dataset="auto", results_dir=tmp_path)
    assert runs.source == "cached" and runs.dataset == "utkface-dir"      # agedb > utkface > ... > sts
    assert runs.missing == ["RankSim"] and runs.seeds() == [0, 1]
    d = runs.describe()
    assert "stored run records" in d and "utkface-dir" in d and "No records for: RankSim" in d
    runs = cached_runs(specs, dataset="sts-b-dir", results_dir=tmp_path)
    assert runs.dataset == "sts-b-dir" and len(runs.records["Vanilla"]) == 1
    none = get_runs([RunSpec("oe")], [0], dataset="auto", results_dir=tmp_path, train=False)
    assert none.source == "none" and not none and "No run records" in none.describe()
    with pytest.raises(ValueError, match="SOURCE must be"):
        get_runs(specs, [0], source="disk", results_dir=tmp_path)
    with pytest.raises(ValueError, match="share a label"):
        get_runs([RunSpec("vanilla", "A"), RunSpec("lds", "A")], [0], results_dir=tmp_path)


def test_partial_stored_records_are_not_mixed_into_a_figure(tmp_path):
    write(tmp_path, fake_record("utkface-dir", "vanilla", 0))
    write(tmp_path, fake_record("utkface-dir", "vanilla", 0, loss="mse"), name="vanilla__loss-mse")
    write(tmp_path, fake_record("utkface-dir", "lds", 0, method_kwargs={"lds.sigma": 1.0}))
    specs = [RunSpec("vanilla"), RunSpec("ranksim")]
    part = get_runs(specs, [0], results_dir=tmp_path, require="any", train=False)
    assert part.source == "cached" and part.missing == ["RankSim"]
    # require="all" (figures): incomplete stored records -> the page trains all of them instead;
    # with train=False we only see that the partial set is not returned as complete
    assert get_runs(specs, [0], results_dir=tmp_path, train=False).missing == ["RankSim"]
    with pytest.raises(ValueError, match="require"):
        get_runs(specs, [0], results_dir=tmp_path, require="some")
    ds, found = stored_specs(tmp_path, order=["lds", "vanilla"])
    assert ds == "utkface-dir"
    assert [(s.method, s.loss) for s in found] == [("lds", None), ("vanilla", None), ("vanilla", "mse")]
    assert found[0].label.startswith("LDS [") and found[2].label == "Vanilla (MSE)"
    assert all(any(s.matches(r["config"]) for r in cached_runs(found, dataset=ds, results_dir=tmp_path)
                   .records[s.label]) for s in found)
    assert stored_specs(tmp_path, dataset="sts-b-dir") == (None, [])


# ----------------------------------------------------------------------------------- Fig. 1
def _runs_from(records_by_label, dataset="synthetic"):
    specs = [RunSpec(recs[0]["config"]["method"], label) for label, recs in records_by_label.items()]
    return Runs(dataset=dataset, source="cached", folder="results", quick=False, specs=specs,
                  records=dict(records_by_label))


def test_shot_table_mean_and_sample_std_over_seeds():
    recs = [fake_record(seed=s) for s in (0, 1, 2)]
    one = [fake_record(method="lds", seed=0)]
    runs = _runs_from({"V": recs, "L": one})
    t = F.shot_table(runs, metrics=("mae",))
    for shot in ("all", "many", "median", "few"):
        vals = np.array([r["test"][shot]["mae"] for r in recs])
        row = t[(t["label"] == "V") & (t["shot"] == shot)].iloc[0]
        assert row["mae_mean"] == pytest.approx(vals.mean())
        assert row["mae_std"] == pytest.approx(vals.std(ddof=1))
        assert row["n_seeds"] == 3
    lrow = t[(t["label"] == "L") & (t["shot"] == "all")].iloc[0]
    assert math.isnan(lrow["mae_std"])
    disp = naming.shot_table_display(t, "mae")
    assert list(disp.columns) == ["All", "Many", "Med.", "Few", "seeds"]
    m, s = t.iloc[0]["mae_mean"], t.iloc[0]["mae_std"]
    assert disp.loc["V", "All"] == f"{m:.2f} ± {s:.2f}" and "±" not in disp.loc["L", "All"]
    gaps = F.shot_gaps(t, "mae")
    mm = t.set_index(["label", "shot"])["mae_mean"]
    assert gaps.loc["V", "few / many"] == pytest.approx(mm[("V", "few")] / mm[("V", "many")])


def test_plot_shot_errors_bars_are_the_means_and_error_bars_the_stds():
    runs = _runs_from({"V": [fake_record(seed=s) for s in (0, 1)], "L": [fake_record("synthetic", "lds", s) for s in (0, 1)]})
    t = F.shot_table(runs, metrics=("mae",))
    fig = plots.plot_shot_errors(t, "mae", title="x")
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 9) for p in ax.patches)
    assert heights == sorted(round(v, 9) for v in t["mae_mean"])
    assert [tl.get_text() for tl in ax.get_xticklabels()] == ["V", "L"]
    segs = [c for c in ax.collections]            # one LineCollection of error bars per shot
    lengths = sorted(round(float(abs(s[1][1] - s[0][1])) / 2, 9) for c in segs for s in c.get_segments())
    assert lengths == sorted(round(v, 9) for v in t["mae_std"])
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_shot_errors(t.iloc[:0], "mae")


def test_format_helpers():
    assert F.format_mean_std(7.7712, 0.1234, 2) == "7.77 ± 0.12"
    assert F.format_mean_std(0.9, float("nan"), 3) == "0.900"
    assert F.format_mean_std(float("nan"), 1.0) == "–"
    line = naming.format_ordinality({"spearman": 0.5, "spearman_many": 1.0, "spearman_median": float("nan"),
                                "spearman_few": -0.25, "adjacent_violations": 3, "adjacent_pairs": 9})
    assert line == "Spearman 0.50 (many 1.00 · med nan · few -0.25); violations 3/9"
    assert F.main_metric("sts-b-dir") == "mse" and F.main_metric("utkface-dir") == "mae"


# ----------------------------------------------------------------------------------- Figs. 2 / 5
def test_shot_spans_and_shot_mae():
    spans = plots.shot_spans([0, 1, 2, 3, 5, 6], ["few", "few", "many", "many", "many", "few"])
    assert spans == [(-0.5, 1.5, "few"), (1.5, 5.5, "many"), (5.5, 6.5, "few")]   # 4 is no label: 5 joins
    assert plots.shot_spans([], []) == []
    with pytest.raises(ValueError):
        plots.shot_spans([1, 2], ["few"])
    df = pd.DataFrame({"count": [1, 3, 10, 2], "mae": [4.0, 2.0, 1.0, 5.0], "shot": ["few", "few", "many", "median"]})
    m = F.shot_mae(df)
    assert m["few"] == pytest.approx((4 * 1 + 2 * 3) / 4) and m["many"] == 1.0 and m["median"] == 5.0
    assert m["all"] == pytest.approx((4 + 6 + 10 + 10) / 16)


def test_per_label_ordinality_targets_and_grid_plot():
    base = fake_record(method="bmc")
    frob = fake_record(method="bmc+frobenius", frobenius=True)
    df = F.per_label(base)
    assert list(df["label"]) == sorted(df["label"]) and {"proto_norm", "mae", "shot", "count"} <= set(df.columns)
    assert F.final_phase(frob) == "sft" and F.norm_targets(base) is None
    assert F.ordinality(frob) == frob["phases"]["sft"]["train_per_label"]["ordinality"]
    fig = plots.plot_norm_grid([("BMSE", base), ("BMSE + ours", frob)], suptitle="s")
    axes = [a for a in fig.axes if a.get_title()]
    assert len(axes) == 2 and axes[0].get_title().startswith("BMSE\nSpearman")
    bars = sorted(p.get_height() for p in axes[0].patches if p.get_width() < 1.0)
    assert np.allclose(bars, sorted(df["mae"]))
    twins = [a for a in fig.axes if not a.get_title() and a.lines]
    line = twins[0].lines[0]
    assert np.allclose(line.get_ydata(), df["proto_norm"])
    dashed = [ln for ln in twins[1].lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1                              # phase 2's predicted norms on the frobenius panel
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "prototype norm (right)" in labels and "few-shot labels" in labels
    with pytest.raises(ValueError, match="no panels"):
        plots.plot_norm_grid([])
    bad = fake_record()
    del bad["phases"]["main"]["train_per_label"]
    with pytest.raises(ValueError, match="train_per_label"):
        F.per_label(bad)


def test_ordinality_table_and_before_after():
    good = fake_record(method="ranksim")
    bad = fake_record(method="bmc", flip_tail=True)
    tab = F.ordinality_table([("B", bad), ("G", good)])
    sc = F.ordinality(good)
    assert tab.loc["G", "Spearman"] == pytest.approx(sc["spearman"])
    assert tab.loc["G", "violations"] == f"{sc['adjacent_violations']}/{sc['adjacent_pairs']}"
    assert tab.loc["B", "Spearman"] < tab.loc["G", "Spearman"]
    assert tab.loc["G", "train MAE Few"] == pytest.approx(F.shot_mae(F.per_label(good))["few"])
    ba = F.before_after([("B", bad, "G", good)])
    assert ba.loc["B -> G", ("Spearman", "before")] == pytest.approx(tab.loc["B", "Spearman"])
    assert ba.loc["B -> G", ("Spearman", "after")] == pytest.approx(tab.loc["G", "Spearman"])


# ----------------------------------------------------------------------------------- Fig. 3
def test_training_curves_convergence_and_plot():
    rec = fake_record(n_epochs_hist=8)
    c = F.training_curves(rec)
    assert len(c) == 8 * 3 and set(c["shot"]) == {"many", "median", "few"}
    few = c[c["shot"] == "few"].sort_values("epoch")
    assert np.allclose(few["train_mae"], [3.0 / e + 0.5 for e in range(1, 9)])
    assert np.allclose(few["val_mae"], [4.0 / e + 0.2 for e in range(1, 9)])
    assert F.convergence_epoch([10, 5, 2, 1.05, 1.0]) == 4
    assert F.convergence_epoch([1, 1, 1]) == 1
    assert F.convergence_epoch([5, 1.0, 3.0, 1.0]) == 4      # leaves the band, so it settles late
    assert F.convergence_epoch([float("nan")] * 3) is None
    assert F.convergence_epoch([4, float("nan"), 1.0]) == 2   # NaN entries are skipped
    fig = plots.plot_training_curves(c, title="t")
    left = fig.axes[0]
    curves = [ln for ln in left.lines if len(ln.get_xdata()) == 8]
    assert len(curves) == 3 and left.get_yscale() == "log"
    assert plots.plot_training_curves(c, log=False).axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="history"):
        F.training_curves({"phases": {"main": {}}, "final": "main"})


# ----------------------------------------------------------------------------------- tables
def test_table_specs_map_the_paper_rows():
    specs = F.table_specs(1)
    methods = [s.method for s in specs]
    assert methods[0] == "vanilla" and "frobenius" in methods and "smogn" in methods
    assert [s.label for s in specs if s.method == "lds"] == ["SQINV + LDS"]
    assert len(methods) == len(set(methods))
    t3 = {s.label: s.method for s in F.table_specs(3)}
    assert t3["LDS"] == "lds" and t3["LDS + FDS + DER"] == "lds+fds+der" and t3["Ours"] == "frobenius"
    sub = F.table_specs(1, methods=["vanilla", "ranksim+frobenius"])
    assert [s.method for s in sub] == ["vanilla", "ranksim+frobenius"]


def test_table_frame_paper_cells_are_the_csv_values_and_dirlib_cells_the_records():
    recs = [fake_record("agedb-dir", "vanilla", s) for s in (0, 1)]
    extra = [fake_record("agedb-dir", "ranksim+frobenius", 0)]
    runs = Runs(dataset="agedb-dir", source="cached", folder="results", quick=False,
                  specs=[RunSpec("vanilla", "VANILLA"), RunSpec("ranksim+frobenius")],
                  records={"VANILLA": recs, "RankSim + Ours": extra})
    df = F.table_frame(1, runs)
    paper = paper_table(1)
    for r in paper.itertuples():
        cell = df.loc[(r.method, "paper"), (r.metric, F.SHOT_NAMES[r.shot])]
        assert cell == f"{r.value:.2f}"
    maes = np.array([r["test"]["few"]["mae"] for r in recs])
    assert df.loc[("VANILLA", "dirlib"), ("MAE", "Few")] == f"{maes.mean():.2f} ± {maes.std(ddof=1):.2f}"
    gms = np.array([r["test"]["all"]["gm"] for r in recs])
    assert df.loc[("VANILLA", "dirlib"), ("GM", "All")] == f"{gms.mean():.2f} ± {gms.std(ddof=1):.2f}"
    idx = list(df.index)
    assert idx.index(("VANILLA", "dirlib")) == idx.index(("VANILLA", "paper")) + 1
    assert idx[-1] == ("RankSim + Ours", "dirlib")              # not a paper row: appended
    assert ("SMOTER", "dirlib") not in idx
    only = F.table_frame(1, runs, paper=False)
    assert set(only.index.get_level_values("source")) == {"dirlib"} and len(only) == 2
    t2 = F.table_frame(2, None)
    assert t2.loc[("BMC", "paper"), ("GM", "All")] == "–"        # the paper prints '-'
    sts = Runs(dataset="sts-b-dir", source="cached", folder="r", quick=False, specs=[RunSpec("lds", "LDS")],
                 records={"LDS": [fake_record("sts-b-dir", "lds", s) for s in (0, 1)]})
    t3 = F.table_frame(3, sts)
    assert list(t3.columns.get_level_values(0).unique()) == ["MSE", "Pearson"]
    assert t3.loc[("LDS", "paper"), ("MSE", "All")] == "0.914"
    assert t3.loc[("LDS", "dirlib"), ("Pearson", "Few")].count(".") == 2   # "x.y ± z.w": one decimal
    with pytest.raises(ValueError, match="no test metric 'pearson'"):
        F.table_frame(3, _runs_from({"LDS": [fake_record("synthetic", "lds", 0)]}))
    with pytest.raises(ValueError, match="table must be"):
        F.table_frame(4, None)
    css = naming.style_table(df).to_html().split("</style>")[0]
    assert "background-color: #eaf2fb" in css
    pos = {k: i for i, k in enumerate(idx)}
    for key in (("VANILLA", "dirlib"), ("RankSim + Ours", "dirlib")):       # shaded: every cell
        assert all(f"_row{pos[key]}_col{c}" in css for c in range(8))
    assert f"_row{pos[('VANILLA', 'paper')]}_col0" not in css
    assert "background-color" not in naming.style_table(only).to_html().split("</style>")[0]  # all dirlib


def test_table_runs_uses_committed_records_and_does_not_train_real_data_in_quick_mode(tmp_path):
    write(tmp_path, fake_record("sts-b-dir", "lds", 0))
    r3 = F.table_runs(3, [0], results_dir=tmp_path, quick=True)
    assert r3.source == "cached" and list(r3.records) == ["LDS"]
    r1 = F.table_runs(1, [0], results_dir=tmp_path, quick=True, data_dir=tmp_path)
    assert r1.source == "none" and "data files are not under DATA_DIR" in r1.describe()


# ----------------------------------------------------------------------------------- section 3.2
def test_ridge_closed_form_is_the_minimiser():
    rng = np.random.RandomState(0)
    for lam in (0.0, 0.3, 5.0):
        z, y = rng.randn(6), 2.5
        w = ridge.ridge_weight(z, y, lam)
        # normal equations (z z^T + lam I) w = z y; for lam = 0 the minimum-norm solution (pinv)
        ref = np.linalg.pinv(np.outer(z, z) + lam * np.eye(6)) @ (z * y)
        assert np.allclose(w, ref)
        assert np.linalg.norm(w) == pytest.approx(ridge.ridge_weight_norm(y, np.linalg.norm(z), lam))
    with pytest.raises(ValueError, match="no unique minimiser"):
        ridge.ridge_weight(np.zeros(3), 1.0, 0.0)
    with pytest.raises(ValueError):
        ridge.ridge_weight(np.ones(3), 1.0, -1.0)
    s = np.linspace(0.01, 5, 2000)
    wn = ridge.ridge_weight_norm(3.0, s, 2.0)
    assert s[np.argmax(wn)] == pytest.approx(math.sqrt(2.0), abs=0.01)      # the peak at ||z||^2 = lambda


def test_shared_ridge_fit():
    y = np.arange(1, 11, dtype=float)
    exact = ridge.shared_ridge_fit(y, ridge.label_norms(y, 1.0, 1.0), 0.0)          # norm = label
    assert exact["rmse"] == pytest.approx(0.0, abs=1e-12) and np.allclose(exact["pred"], y)
    flat = ridge.shared_ridge_fit(y, ridge.label_norms(y, 0.0, 2.0), 0.0)
    assert np.allclose(flat["pred"], y.mean())                               # one prediction for all
    s = ridge.label_norms(y, 0.5, 1.0)
    fit = ridge.shared_ridge_fit(y, s, 3.0)
    w = np.linalg.solve(np.array([[s @ s + 3.0]]), np.array([s @ y]))[0]
    assert fit["w"] == pytest.approx(w) and np.allclose(fit["pred"], s * w)
    assert np.allclose(fit["per_label_w"], y * s / (s ** 2 + 3.0))
    assert ridge.shared_ridge_fit(y, s, 100.0)["rmse"] > fit["rmse"]            # shrinkage hurts
    with pytest.raises(ValueError):
        ridge.label_norms(y, -1.0, 1.0)
    fig = plots.plot_ridge(1.0, 0.5)
    assert len(fig.axes) == 3
    assert len(plots.plot_ridge_slopes(1.0, (0.0, 1.0)).axes[1].lines) == 3


# ----------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def tiny():
    return load_synthetic(n_labels=12, n_max=160, width=2.5, dim=8, per_label_eval=4)


def test_explore_run_snapshots(tiny):
    assert widgets.explore_method("vanilla", 0) == ("vanilla", {})
    assert widgets.explore_method("vanilla", 2.0) == ("frobenius_reg", {"frobenius_reg.beta": 2.0})
    assert widgets.explore_method("ranksim", 0.5) == ("ranksim+frobenius_reg", {"frobenius_reg.beta": 0.5})
    with pytest.raises(ValueError, match=">= 0"):
        widgets.explore_method("vanilla", -1)
    res = widgets.explore_run(tiny, "vanilla", beta=1.0, epochs=3, snapshots=[1, 3])
    assert sorted(res["snapshots"]) == [1, 3] and res["method"] == "frobenius_reg"
    snap = res["snapshots"][3]
    assert {"label", "proto_norm", "mae", "shot"} <= set(snap["per_label"].columns)
    assert snap["ordinality"]["n_points"] == len(snap["per_label"])
    assert not snap["per_label"]["proto_norm"].equals(res["snapshots"][1]["per_label"]["proto_norm"])
    with pytest.raises(ValueError, match="multi-phase"):
        widgets.explore_run(tiny, "rrt", epochs=1)
    with pytest.raises(ValueError, match="> epochs"):
        widgets.explore_run(tiny, "vanilla", epochs=2, snapshots=[3])
    with pytest.raises(ValueError, match=">= 1"):
        widgets.SnapshotCallback([0])
    fig = plots.plot_snapshot(snap, title="t")
    assert len(fig.axes) == 2 and plots.png_bytes(fig)[:4] == b"\x89PNG"


def test_train_runs_writes_reuses_and_names_failures(tmp_path):
    spec = RunSpec("vanilla", "MSE", loss="mse")
    runs = train_runs([spec], [0], dataset="synthetic", folder=tmp_path, quick=True, epochs=1)
    assert runs.source == "trained" and runs.trained == 1 and runs.reused == 0
    rec = runs.first("MSE")
    assert rec["status"] == "completed" and rec["config"]["loss"] == "mse" and rec["config"]["epochs"] == 1
    paths = list(tmp_path.rglob("run.json"))
    assert len(paths) == 1 and paths[0].parent.name == "seed0"
    assert paths[0].parent.parent.name.startswith("vanilla__loss-mse-")
    assert not (paths[0].parent / "ckpt").exists()
    again = train_runs([spec], [0], dataset="synthetic", folder=tmp_path, quick=True, epochs=1)
    assert again.trained == 0 and again.reused == 1
    assert again.first("MSE")["config_hash"] == rec["config_hash"]
    d = again.describe()
    assert "trained by this page" in d and "synthetic data" in d and "not comparable" in d
    # the same records now serve a cached lookup of that folder
    cached = cached_runs([spec], dataset="synthetic", results_dir=tmp_path)
    assert cached.source == "cached" and cached.first("MSE")["config_hash"] == rec["config_hash"]
    bad = run_spec("ranksim", method_kwargs={"oe.weight": 1.0})   # not a component of ranksim
    with pytest.raises(RuntimeError, match=r"training RankSim \(ranksim\) seed 0 on synthetic failed"):
        train_runs([bad], [0], dataset="synthetic", folder=tmp_path, quick=True, epochs=1)


def test_train_runs_waits_for_a_page_that_trains_the_same_run(tmp_path):
    """Two pages of a parallel book build may need one run: the second waits for the first's lock,
    then reuses its record instead of failing."""
    import threading
    import time

    from dirlib.records import RunLock
    spec = RunSpec("vanilla", "MSE", loss="mse")
    train_runs([spec], [0], dataset="synthetic", folder=tmp_path, quick=True, epochs=1)
    folder = next(tmp_path.rglob("run.json")).parent
    lock = RunLock(folder).__enter__()                 # the other page, still training
    threading.Timer(0.5, lambda: lock.__exit__(None, None, None)).start()
    t0 = time.time()
    runs = train_runs([spec], [0], dataset="synthetic", folder=tmp_path, quick=True, epochs=1)
    assert time.time() - t0 >= 0.4 and runs.reused == 1 and runs.trained == 0


def test_full_mode_layout_conflicts_and_table_runs_training(tmp_path):
    spec = RunSpec("vanilla")
    runs = train_runs([spec], [0], dataset="synthetic", folder=tmp_path / "runs", quick=False, epochs=1)
    path = tmp_path / "runs" / "synthetic" / "vanilla" / "seed0" / "run.json"   # dirlib.tools.sweep's layout
    assert path.is_file() and runs.first("Vanilla")["config"]["epochs"] == 1
    with pytest.raises(RuntimeError, match="another configuration"):
        train_runs([spec], [0], dataset="synthetic", folder=tmp_path / "runs", quick=False, epochs=2)
    # a table trains its dataset only when DATASET names it (here: synthetic, Table 1's layout)
    kw = dict(dataset="synthetic", quick=True, methods=["vanilla"], results_dir=tmp_path / "empty",
              epochs=1, scratch=tmp_path / "scratch")
    assert F.table_runs(1, [0], dataset_param="auto", **kw).source == "none"
    tr = F.table_runs(1, [0], dataset_param="synthetic", **kw)
    assert tr.source == "trained" and list(tr.records) == ["VANILLA"]
    assert F.table_frame(1, tr, paper=False).index.tolist() == [("VANILLA", "dirlib")]


# ----------------------------------------------------------------------------------- widgets
def test_linked_explorer_nests_stacks_and_links_every_level():
    W = pytest.importorskip("ipywidgets")
    axes = [("method", ["a", "b"]), ("beta", [0.0, 1.0, 10.0])]
    images = {(m, b): plots.png_bytes(plt.figure(figsize=(1, 1))) for m in ("a", "b") for b in (0.0, 1.0, 10.0)}
    box = widgets.linked_explorer(images, axes)
    ctrl_m, ctrl_b, root = box.children
    assert isinstance(ctrl_m, W.Dropdown) and isinstance(ctrl_b, W.SelectionSlider)
    assert isinstance(root, W.Stack) and len(root.children) == 2
    assert all(isinstance(c, W.Stack) and len(c.children) == 3 for c in root.children)
    leaf = root.children[1].children[2]
    assert isinstance(leaf, W.Image) and leaf.value == images[("b", 10.0)]
    links = box._dirlib_links
    assert len(links) == 1 + 2
    from ipywidgets.widgets.widget_link import Link
    assert all(isinstance(k, Link) for k in links)
    assert {(k.source[0], k.target[0]) for k in links} == {(ctrl_m, root)} | {(ctrl_b, c) for c in root.children}
    assert all(k.source[1] == "index" and k.target[1] == "selected_index" for k in links)
    # it can open on a chosen state (the explore page opens at the lambda its text uses)
    opened = widgets.linked_explorer(images, axes, start=("b", 1.0))
    c_m, c_b, r = opened.children
    assert c_m.value == "b" and c_b.value == 1.0 and r.selected_index == 1
    assert all(c.selected_index == 1 for c in r.children)
    with pytest.raises(ValueError, match="one value of each axis"):
        widgets.linked_explorer(images, axes, start=("b", 2.0))
    del images[("a", 1.0)]
    with pytest.raises(ValueError, match="without an image"):
        widgets.linked_explorer(images, axes)


def test_live_explorer_trains_on_run(tiny):
    pytest.importorskip("ipywidgets")
    box = widgets.live_explorer(lambda name: tiny, ["synthetic"], ["vanilla", "ranksim"], epochs=2)
    box.controls["beta"].value = 1.0
    box.controls["method"].value = "ranksim"
    res = box.run()
    assert res["method"] == "ranksim+frobenius_reg" and sorted(res["snapshots"]) == [2]
    status = box.children[4].children[1].value
    assert status.startswith("done in") and "Spearman" in status
