"""The committed audit: its tables and the answer in the README and the book's introduction are
what the stored records give, and the answer is generated from the numbers it states."""
from pathlib import Path

import pandas as pd
import pytest

from dirlib import audit
from dirlib.stats import paired_difference

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / "results" / "audit"


def test_committed_answer_blocks_match_the_records():
    stale = audit.update_answer(AUDIT, root=ROOT, check=True)
    assert not stale, f"{stale}: run python -m dirlib.audit tables"
    assert audit.main(["tables", "--results", str(AUDIT), "--check"]) == 0


def test_committed_audit_tables_match_regeneration(tmp_path):
    written = audit.write_tables(AUDIT, tmp_path)
    committed = sorted(p.name for p in (ROOT / "results" / "tables" / "audit").glob("*.csv"))
    assert sorted(p.name for p in written) == committed
    for p in written:
        assert p.read_text() == (ROOT / "results" / "tables" / "audit" / p.name).read_text(), p.name


def test_answer_states_the_numbers_of_its_tables():
    df = audit.collect(AUDIT)
    text = audit.answer(df)
    for ds in df["dataset"].unique():
        for base, t in audit.dataset_tables(df, ds).items():
            for r in t[t["shot"].isin(["median", "few"])].itertuples():
                if r.verdict in ("lower error", "higher error"):
                    # every detectable median/few change is stated with its interval
                    assert f"{r.shot} {r.mean:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}]" in text, (
                        ds, base, r.effect, r.shot)


def test_answer_sentences_follow_the_verdicts():
    """Synthetic decomposition input: a part that lowers few-shot error is named as the carrier,
    one whose interval covers zero is named as indistinguishable from zero."""
    rows = []
    arms = {"base": 10.0, "phase1": 10.0, "phase1>text": 10.0, "text": 9.0, "text-no-norm": 10.0,
            "code@heldout": 10.0, "code-no-norm@heldout": 10.0, "code@best_test": 10.0,
            "code-no-norm@best_test": 10.0, "code@default": 10.0, "code-no-norm@default": 10.0}
    noise = [0.01, -0.02, 0.015, 0.0, -0.005]
    for seed, eps in enumerate(noise):
        for arm, v in arms.items():
            for shot in audit.SHOTS_ALL:
                # the norm term lowers few-shot error by 1; everything else only jitters
                val = v + (eps * (1 + len(arm) % 3) if arm != "text" or shot != "few" else 0)
                if arm == "text" and shot != "few":
                    val = 10.0 + eps * 2
                rows.append({"dataset": "synthetic", "base": "vanilla", "seed": seed, "arm": arm,
                             "shot": shot, "metric": "mae", "value": val})
    df = pd.DataFrame(rows)
    text = audit.dataset_answer(df, "synthetic")
    t = audit.decomposition(df, "synthetic", "vanilla")
    norm = t[(t["effect"] == "the norm term under the text protocol") & (t["shot"] == "few")].iloc[0]
    want = paired_difference(df[(df.arm == "text") & (df.shot == "few")]["value"],
                             df[(df.arm == "text-no-norm") & (df.shot == "few")]["value"])
    assert norm["mean"] == pytest.approx(want.mean) and norm["verdict"] == "lower error"
    carriers = text.split("Of its parts, only these lower")[1].split(".")[0]
    assert "the norm term under the text protocol" in carriers
    zero = text.split("Indistinguishable from zero")[1].split(".")[0]
    assert "phase 1 alone" in zero and "the norm term under the text protocol" not in zero
