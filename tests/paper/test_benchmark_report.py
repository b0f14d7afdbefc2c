"""dirlib.paper.benchmark_report on constructed records: the family and its correction, what was
cut, the findings generated from the numbers (with their scale), and the reference rows."""
import json

import numpy as np
import pytest

from dirlib.paper import benchmark_report as br
from dirlib.tools import benchmark as plan

SHOTS = ("all", "many", "median", "few")


def write(root, method, seed, values, device="cpu"):
    d = root / "benchmark" / "sts-b-dir" / method.replace("+", "_") / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps({
        "status": "completed", "config": {"method": method, "seed": seed}, "device": device,
        "test": {s: {"mse": float(v)} for s, v in zip(SHOTS, values)}}))


@pytest.fixture
def results(tmp_path):
    rng = np.random.default_rng(0)
    for seed in range(5):
        base = 1.3 + rng.normal(0, 0.05)
        write(tmp_path, "vanilla", seed, [base, 1.2, 1.8, 1.7])
        # lds: clearly lower median error; oe: clearly higher; frobenius: no effect
        write(tmp_path, "lds", seed, [base, 1.2, 1.8 - 0.5 + rng.normal(0, 0.01), 1.7])
        write(tmp_path, "oe", seed, [base, 1.2, 1.8 + 0.9 + rng.normal(0, 0.01), 1.7])
        write(tmp_path, "frobenius", seed, [base, 1.2, 1.8 + rng.normal(0, 0.05), 1.7])
    write(tmp_path, "bmc", 0, [2.0, 2.0, 2.0, 2.0])           # one seed: not in the family
    refs = {"metric": "mse", "rows": {
        "training mean": {"seeds": {str(s): {k: {"mse": 2.1} for k in SHOTS} for s in range(5)}},
        "gradient boosting": {"seeds": {str(s): {k: {"mse": 1.6} for k in SHOTS}
                                        for s in range(5)}}}}
    (tmp_path / "benchmark" / "sts-b-dir" / "references.json").write_text(json.dumps(refs))
    return tmp_path


def test_family_cut_and_findings(results):
    tuned = br.collect(results / "benchmark")
    fam = br.family_table(tuned)
    # the cells with >= 4 paired seeds: lds, oe, frobenius vs vanilla at two shots
    assert set(fam["a"]) == {"lds", "oe", "frobenius"} and len(fam) == 6
    assert (fam["level"] == 1 - 0.05 / 6).all() and (fam["p_holm"] >= fam["p"]).all()
    v = {(r.a, r.shot): r.verdict for r in fam.itertuples()}
    assert v[("lds", "median")] == "lower error" and v[("oe", "median")] == "higher error"
    assert v[("frobenius", "median")] == "no effect" and v[("lds", "few")] == "no effect"
    c = br.cut(tuned, fam)
    assert "bmc" in c["methods"] and c["seeds_done"]["bmc"] == 1 and "vanilla" not in c["methods"]
    assert len(c["cells"]) == len(plan.family()) - 6
    refs = br.references(results / "benchmark")
    text = br.findings_text(tuned, fam, refs, "cpu")
    assert "of 3 methods compared" in text and "1 beat it after correction (LDS median)" in text
    assert "1 lost to it" in text and "10 epochs" in text and "seeds 0-4" in text
    assert "The paper's method: " in text and "(no effect)" in text
    # reference rows: every tuned method is worse than 1.6 at the median shot but lds (1.3)
    assert "beats 3 of 5 tuned methods" in text or "beats 4 of 5 tuned methods" in text


def test_nothing_stored_says_so(tmp_path):
    tuned = br.collect(tmp_path / "benchmark")
    assert tuned.empty and br.family_table(tuned).empty
    assert "No tuned benchmark record" in br.findings_text(tuned, br.family_table(tuned),
                                                            br.references(tmp_path), "cpu")
    assert br.front_bullet(tmp_path) == ""
    assert br.cut(tuned, br.family_table(tuned))["methods"] == list(plan.METHODS)
