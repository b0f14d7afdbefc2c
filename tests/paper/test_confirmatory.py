"""dirlib.paper.confirmatory: the plan's decision rule on constructed records (docs/
confirmatory-plan.md), the exploratory seeds never pooled, no verdict before 15 seeds."""
import numpy as np
import pandas as pd
import pytest

from dirlib.paper import confirmatory as conf


def frame(effect: dict, seeds, sd=0.01, harm=0.3, seed=0):
    """Audit-style long rows: base, text-no-norm = base + harm, text = text-no-norm + effect."""
    rng = np.random.default_rng(seed)
    rows = []
    for base in conf.BASES:
        for shot in ("all", "many", "median", "few"):
            for s in seeds:
                b = 1.0 + rng.normal(0, 0.1)
                nn = b + harm + rng.normal(0, 0.02)
                t = nn + effect.get((base, shot), 0.0) + rng.normal(0, sd)
                for arm, v in (("base", b), ("text-no-norm", nn), ("text", t)):
                    rows.append({"dataset": "sts-b-dir", "base": base, "seed": s, "arm": arm,
                                 "shot": shot, "metric": "mse", "value": v})
    return pd.DataFrame(rows)


EXPLORATORY = {(b, s): -0.08 for b in conf.BASES for s in conf.SHOTS}


def test_the_rule_on_constructed_effects():
    ex = conf.exploratory_table(frame(EXPLORATORY, range(5), seed=1))
    assert np.allclose(ex["mean"], -0.08, atol=0.02) and (ex["n"] == 5).all()
    # a real effect as large as the exploratory one: every cell confirmed
    t = conf.table(frame(EXPLORATORY, conf.SEEDS, seed=2), ex)
    assert list(t["verdict"]) == ["confirmed"] * 4 and conf.study_verdict(t["verdict"]) == "confirmed"
    assert (t["n"] == 15).all() and (t["p_holm"] >= t["p"]).all()
    assert (t["lo"] < t["lo95"]).all()                      # the corrected interval is wider
    # no effect, measured precisely: every exploratory estimate is ruled out -> refuted
    t0 = conf.table(frame({}, conf.SEEDS, seed=3), ex)
    assert conf.study_verdict(t0["verdict"]) == "refuted"
    # harm of the extra epochs: +0.3 built in, and the share the norm term takes back
    assert np.allclose(t["harm"], 0.3, atol=0.03)
    assert np.allclose(t["recovered"], 0.08 / 0.3, atol=0.05)
    text = conf.summary(t)
    assert "**confirmed**" in text and "seeds 5-19" in text and "BiLSTM" in text
    assert "10 epochs" in text and "0-5" in text
    assert "takes back" in conf.harm_sentence(t)
    assert "the text method as a whole" in conf.front_bullet(t)
    # the figure draws a complete study (and a pending one)
    import matplotlib
    matplotlib.use("Agg")
    df = frame(EXPLORATORY, conf.SEEDS, seed=2)
    fig = conf.plot(t, conf.seed_differences(df, conf.SEEDS),
                    conf.seed_differences(frame(EXPLORATORY, range(5), seed=1), range(5)))
    assert len(fig.axes[0].lines) > 8
    # no harm built in: no share of it is given
    t_noharm = conf.table(frame(EXPLORATORY, conf.SEEDS, seed=6, harm=0.0), ex)
    assert t_noharm["recovered"].isna().all()
    assert "no detectable harm" in conf.harm_sentence(t_noharm)


def test_no_verdict_before_every_cell_has_its_seeds_and_no_pooling():
    ex = conf.exploratory_table(frame(EXPLORATORY, range(5), seed=1))
    df = pd.concat([frame(EXPLORATORY, range(5), seed=4), frame(EXPLORATORY, range(5, 12), seed=5)])
    t = conf.table(df, ex)
    assert (t["n"] == 7).all()             # seeds 0-4 are in the frame, never in the cells
    assert set(t["verdict"]) == {"pending"} and "not finished" in conf.summary(t)
    assert conf.harm_sentence(t) == "" and conf.forest_rows(t).empty


@pytest.mark.parametrize("p_holm,mean,lo,want", [(0.049, -0.02, -0.05, "confirmed"),
                                                  (0.05, -0.02, -0.05, "refuted"), (0.05, -0.02, -0.09, "inconclusive"),
                                                  (0.2, 0.01, -0.079, "refuted"),
                                                  (0.2, 0.01, -0.08, "inconclusive")])
def test_cell_rule_edges(p_holm, mean, lo, want):
    assert conf.cell_verdict(p_holm, mean, lo, -0.08) == want
