"""The generated findings: each sentence follows the numbers it is built from, and the block in the
book's introduction matches the stored records."""
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from dirlib.paper import findings as F  # noqa: E402
from dirlib.paper import naming, plots, ridge  # noqa: E402
from dirlib.paper.page_runs import Runs  # noqa: E402
from dirlib.paper.record_tables import replace_block  # noqa: E402
from dirlib.stats import paired_difference  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.artefacts
def test_intro_block_matches_the_stored_records():
    block = "\n" + F.intro_block(ROOT / "results")
    assert replace_block(ROOT / "book" / "intro.md", F.BEGIN, F.END, block, check=True), \
        "book/intro.md's findings block is stale: run python -m dirlib findings"
    # one question per page, one line per dataset with records
    for q in F.QUESTIONS.values():
        assert q in block
    assert block.count("- On STS-B-DIR") == 4 and block.count("- On UTKFace-DIR") == 4


def _table(rows):
    return pd.DataFrame([{"label": lab, "shot": s, "mae_mean": v} for lab, vals in rows.items()
                         for s, v in zip(("many", "median", "few"), vals)])


def test_shot_gap_finding_names_the_exceptions_and_the_factors():
    t = _table({"A": (4.0, 6.0, 8.0), "B": (5.0, 4.0, 5.5), "C": (2.0, 3.0, 1.0)})
    s = F.shot_gap_finding(t, "mae", "toy")
    assert "few-shot test MAE is above the many-shot test MAE for 2 of 3 methods (not for C)" in s
    assert "by a factor of 1.10 to 2.00" in s                     # 5.5/5 and 8/4
    assert "median-shot test MAE is above it for 2 of 3 methods (not for B)" in s
    every = F.shot_gap_finding(_table({"A": (1.0, 2.0, 3.0)}), "mae", "toy")
    assert "for every method (1 of 1)" in every
    # no few-shot test samples: the sentence says so and still states the median shot
    no_few = _table({"A": (4.0, 6.0, 8.0)})
    no_few = no_few[no_few["shot"] != "few"]
    s = F.shot_gap_finding(no_few, "mae", "toy")
    assert "no method has a few-shot and a many-shot test MAE" in s
    assert "median-shot test MAE is above it for every method (1 of 1), by a factor of 1.50" in s


def test_premise_finding_follows_the_spearman_values():
    holds = F.premise_finding("V", {"spearman": 0.5, "spearman_many": 0.95, "spearman_median": 0.2,
                                    "spearman_few": -0.1}, "toy")
    assert "premise holds here" in holds and "0.95" in holds
    flat = F.premise_finding("V", {"spearman": 0.28, "spearman_many": 0.57, "spearman_median": 0.82,
                                   "spearman_few": 0.10}, "toy")
    assert "does not hold" in flat and "ordinal over the median-shot labels" in flat
    assert "not over the many-shot and few-shot labels" in flat
    change = F.method_change_finding([("V", [{"spearman": 0.28}, {"spearman": 0.29}], "V+",
                                       [{"spearman": -0.12}, {"spearman": 0.11}]),
                                      ("L", [{"spearman": 0.5}, {"spearman": 0.4}], "L+",
                                       [{"spearman": 0.9}, {"spearman": 0.8}]),
                                      ("R", [{"spearman": 0.99}, {"spearman": 0.99}], "R+",
                                       [{"spearman": 0.99}, {"spearman": 0.2}])], seeds=[0, 1])
    # every seed's value is stated, so the sign change of V's first seed shows
    assert "(over seeds 0, 1)" in change
    assert "less ordinal in every seed for V 0.28, 0.29 → -0.12, 0.11" in change
    assert "more ordinal in every seed for L 0.50, 0.40 → 0.90, 0.80" in change
    assert "in no common direction for R 0.99, 0.99 → 0.99, 0.20" in change


def test_settle_finding_reports_each_shots_epoch():
    epochs = np.arange(1, 11)
    curves = pd.concat([
        pd.DataFrame({"epoch": epochs, "shot": "many", "train_mae": 1 + 5.0 * (epochs < 3)}),
        pd.DataFrame({"epoch": epochs, "shot": "median", "train_mae": 2 + 5.0 * (epochs < 6)}),
        pd.DataFrame({"epoch": epochs, "shot": "few", "train_mae": 3 + 5.0 * (epochs < 8)})])
    s = F.settle_finding(curves, "toy", "Vanilla")
    assert "many-shot labels settles at epoch 3 of 10, 30% of training." in s
    assert "The median-shot labels settle at epoch 6 and the few-shot labels settle at epoch 8." in s
    assert "So the many shot settles first." in s
    assert "converges at epoch ≈ 40 and gives no total" in s       # the paper's statement
    assert "does not drop" in s and ";" not in s                   # plain sentences
    rec = {"config": {"dataset": "utkface-dir", "model": None, "img_size": 64, "epochs": 10,
                      "seed": 0}, "device": "cpu"}
    s = F.settle_finding(curves, "utkface-dir", "Vanilla", lr_drops=(2, 7),
                         scale=F.record_scale(rec))
    assert s.startswith("On UTKFace-DIR (ResNet-18 at 64 px, 10 epochs, seed 0, cpu),")
    assert "drops after epochs 2 and 7. Settling by epoch 3 and 8 may just follow a drop." in s


def test_base_finding_sorts_effects_by_their_intervals():
    lower = paired_difference([1.0, 1.1, 0.9], [2.0, 2.05, 1.95])   # clearly below
    none = paired_difference([1.0, 2.0, 0.5], [1.2, 1.0, 1.1])       # interval covers 0
    higher = paired_difference([3.0, 3.1, 2.9], [2.0, 2.05, 1.95])
    s = F.base_finding([("Vanilla", {"median": lower, "few": none}), ("LDS", {"few": higher})], "mae", "toy")
    assert f"lowers the error beyond its interval for Vanilla median {lower.mean:+.2f}" in s
    assert "it raises it for LDS few" in s and "no detectable effect for Vanilla few" in s
    # for Pearson, higher is better
    p = F.base_finding([("V", {"few": higher})], "pearson", "toy")
    assert "lowers the error beyond its interval for V few" in p


def test_recipe_bench_fit_and_ridge_findings_follow_their_inputs():
    rec = pd.DataFrame([{"dataset": "utkface-dir", "device": "NVIDIA H200", "model arguments": "{}",
                         "image size": "64 px", "epochs": 20, "lr drops at": "14, 18", "batch size": 64,
                         "lr": 0.001, "runs": 42},
                        {"dataset": "sts-b-dir", "device": "cpu", "model arguments": '{"hidden": 128}',
                         "image size": "–", "epochs": 10, "lr drops at": "none", "batch size": 128,
                         "lr": 0.001, "runs": 42}])
    s = F.recipe_finding(rec)
    assert "UTKFace-DIR: 42 runs on the GPU NVIDIA H200, 64 px, 20 epochs with the learning rate dropped x0.1 at epochs 14, 18" in s
    assert 'STS-B-DIR: 42 runs on the CPU, model arguments {"hidden": 128}, 10 epochs with no learning-rate drop' in s
    rows = [{"case": "c", "method": "vanilla", "kind": "step", "ratio": 1.0},
            {"case": "c", "method": "conr", "kind": "step", "ratio": 2.0},
            {"case": "c", "method": "oe", "kind": "step", "ratio": 1.05},
            {"case": "c", "method": "x", "kind": "extra", "ratio": 9.0}]
    assert F.bench_finding(rows) == ("On c, conr costs the most per training step, 2.00x a "
                                     "Vanilla step. 1 of 2 methods stays within 10% of Vanilla.")
    fit = F.norm_fit_finding([1, 2, 3, 4], [1.0, 2.0, 3.0, 8.0], [1.0, 2.0, 3.0, 4.0],
                             ["many", "many", "few", "few"], [5, 5, 2, 2], "toy")
    assert "the norm network $f_F$ is fitted on 2 majority labels." in fit
    assert "For the 2 median- and few-shot labels with samples it predicts norms of 3 to 4." in fit
    assert "The mean absolute gap is 2, 36% of their mean norm." in fit
    scaled = F.norm_fit_finding([1, 2, 3, 4], [1.0, 2.0, 3.0, 8.0], [1.0, 2.0, 3.0, 4.0],
                                ["many", "many", "few", "few"], [5, 5, 2, 2], "toy",
                                scale="vanilla as the phase-1 stand-in, 1 epoch(s), seed 0, cpu")
    assert "(vanilla as the phase-1 stand-in, 1 epoch(s), seed 0, cpu)" in scaled
    r = F.ridge_finding(1.0, (0.0, 1.0))
    flat = ridge.shared_ridge_fit(np.arange(1, 11.0), ridge.label_norms(np.arange(1, 11.0), 0.0), 1.0)["rmse"]
    assert f"{flat:.2f} at slope 0" in r and "lowest error here is at slope 1" in r


def test_page_tables_have_no_index_column_and_captions_are_escaped():
    df = pd.DataFrame({"a": [1.23456]}, index=pd.Index(["x"], name="run"))
    html = naming.plain_table(df, digits=2).to_html()
    assert "<th" in html and ">run<" in html and "1.23" in html
    assert 'class="row_heading' not in html                         # the index is hidden
    assert "&lt;b&gt;" in naming.caption("<b>")


def test_log_axis_gets_several_tick_labels():
    rows = [{"epoch": e, "shot": s, "train_mae": b + 0.3 / e, "val_mae": b + 0.3 / e}
            for e in range(1, 11) for s, b in (("many", 0.55), ("median", 0.7), ("few", 0.9))]
    fig = plots.plot_training_curves(pd.DataFrame(rows))
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text() and lo <= t.get_position()[1] <= hi]
    assert len(labels) >= 3, labels


@pytest.mark.parametrize("notes", [[], ["a", "b"]])
def test_record_notes_fold_into_one_dropdown(notes):
    runs = Runs(dataset="toy", source="cached", folder="results", quick=False, specs=[],
                     records={}, missing=[], notes=notes)
    text = runs.describe()
    assert text.count("<details") == (1 if notes else 0)
    if notes:
        assert "2 note(s)" in text and "- a." in text and "Note:" not in text


def test_fig1_scale_and_dirty_records_are_stated():
    class Runs:
        records = {"Vanilla": [
            {"config": {"dataset": "utkface-dir", "img_size": 64, "epochs": 20, "seed": s,
                        "model": None}, "device": "cuda",
             "git": {"commit": "x", "dirty": s == 1}} for s in (0, 1, 2)]}
    assert F.runs_scale(Runs()) == "ResNet-18 at 64 px, 20 epochs, cuda; seeds 0, 1, 2"
    note = F.dirty_note(Runs())
    assert note.startswith(" 1 of these 3 records were written from a dirty tree")
    Runs.records["Vanilla"][1]["git"]["diff"] = "run.diff"    # a stored diff: the code is known
    assert F.dirty_note(Runs()) == ""
