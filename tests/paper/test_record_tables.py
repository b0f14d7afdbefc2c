"""The record tables (dirlib/paper/record_tables.py) and the paper's transcribed numbers (results/paper_tables.csv).

Run records here are fake but schema-valid, written into tmp_path only (never committed)."""
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dirlib.paper import record_tables as R
from dirlib.records import stable_hash, write_json
from dirlib.train import RunConfig

ROOT = Path(__file__).resolve().parents[2]
PAPER = Path(__file__).resolve().parents[3] / "shared" / "paper" / "frobenius-norm-dir.md"
SHOTS = ("all", "many", "median", "few")


# ----------------------------------------------------------------------------------- fakes
def fake_record(dataset="synthetic", method="vanilla", seed=0, status="completed", data_hash="d" * 16,
                mae=None, **cfg_over):
    cfg = RunConfig(dataset=dataset, method=method, seed=seed, **cfg_over).to_dict()
    rng = np.random.RandomState(seed * 7 + len(method))
    mae = mae or {s: float(rng.uniform(1, 10)) for s in SHOTS}
    test = {s: {"mae": mae[s], "mse": mae[s] ** 2, "gm": mae[s] * 0.7, "pearson": 70.0 + seed,
                "spearman": 69.0, "n": {"all": 100, "many": 50, "median": 30, "few": 20}[s]}
            for s in SHOTS}
    rec = {"schema": "dirlib.run/1", "status": status, "config": cfg, "config_hash": stable_hash(cfg),
           "data_hash": data_hash, "phases": {"main": {}}, "final": "main"}
    if status == "completed":
        rec["test"] = test
        rec["val"] = test
    return rec


def put(root, rec, name=None):
    c = rec["config"]
    name = name or f"{c['dataset']}/{c['method']}/seed{c['seed']}"
    write_json(Path(root) / "records" / name / "run.json", rec)
    return rec


# ----------------------------------------------------------------------------------- paper tables
def parse_paper_tables(text):
    """Independent parse of the paper's tab-separated tables -> {(table, row_name, col): str}."""
    lines = text.splitlines()
    out = {}
    for i, line in enumerate(lines):
        m = re.match(r"Table (\d): Evaluation on", line)
        if not m:
            continue
        t = int(m.group(1))
        j = i + 1
        while not lines[j].strip():
            j += 1
        header = lines[j].split("\t")[1:]  # metric names, e.g. 'MAE↓', '', '', '', 'GM↓' ...
        metrics = [h.strip().rstrip("↓↑").replace(" Correlation", "") for h in header if h.strip()]
        j += 2
        while j < len(lines) and lines[j].count("\t") == 8:
            cells = lines[j].split("\t")
            for k, c in enumerate(cells[1:]):
                out[(t, cells[0], metrics[k // 4], SHOTS[k % 4])] = re.sub("</?b>", "", c).strip()
            j += 1
    return out


def test_paper_tables_schema():
    df = pd.read_csv(ROOT / "results" / "paper_tables.csv")
    assert list(df.columns) == ["table", "dataset", "method", "metric", "shot", "value", "source"]
    assert len(df) == 320  # (18 + 11 + 11) rows x 8 cells
    assert df.groupby("table").size().to_dict() == {1: 144, 2: 88, 3: 88}
    assert not df.duplicated(["table", "method", "metric", "shot"]).any()
    assert set(df["shot"]) == set(SHOTS)
    assert set(df[df.table < 3]["metric"]) == {"MAE", "GM"}
    assert set(df[df.table == 3]["metric"]) == {"MSE", "Pearson"}
    assert (df["source"] == "paper Table " + df["table"].astype(str)).all()
    assert df["value"].isna().sum() == 8  # GM of BMC and GAI, printed '-'
    assert set(df[df["value"].isna()]["method"]) == {"BMC", "GAI"}


@pytest.mark.artefacts
def test_paper_tables_spot_checks_from_the_prose():
    """Cells the paper's own text repeats (sections 4.3-4.5), typed here from the prose."""
    t = R.paper_table()
    v = lambda tab, meth, met, shot: float(t[(t.table == tab) & (t.method == meth) & (t.metric == met)
                                           & (t.shot == shot)]["value"].iloc[0])
    assert v(1, "Ours", "MAE", "median") == 6.63 and v(1, "Ours", "GM", "median") == 3.98
    assert v(1, "Ours", "MAE", "few") == 9.24 and v(1, "Ours", "MAE", "many") == 7.35
    assert v(1, "VIR", "MAE", "median") == 7.47 and v(1, "VIR", "MAE", "few") == 9.51
    assert v(1, "SupCR", "MAE", "few") == 10.82 and v(1, "SupCR", "MAE", "many") == 6.20
    assert v(2, "Ours", "MAE", "all") == 7.66 and v(2, "Ours", "MAE", "few") == 19.25
    assert v(2, "Ours", "GM", "median") == 6.36 and v(2, "VIR", "MAE", "median") == 11.81
    assert v(3, "Ours", "MSE", "all") == 0.895 and v(3, "Ours", "Pearson", "all") == 76.7
    assert R.paper_table(2)["table"].eq(2).all()
    with pytest.raises(ValueError, match="1, 2 or 3"):
        R.paper_table(4)


@pytest.mark.artefacts
def test_paper_tables_every_cell_matches_the_paper_text():
    if not PAPER.exists():
        pytest.skip(f"paper text not found at {PAPER}")
    cells = parse_paper_tables(PAPER.read_text())
    assert len(cells) == 320
    df = pd.read_csv(ROOT / "results" / "paper_tables.csv", dtype={"value": str}, keep_default_na=False)
    got = {}
    for r in df.itertuples():
        got[(r.table, r.method, r.metric, r.shot)] = r.value
    # the csv's method is the row name without its citation ("Surname et al. (year)" or
    # "Surname & Surname (year)")
    cite = r" [A-Z][a-z]+ (et al\.|& [A-Z][a-z]+) \(\d{4}\)$"
    for (t, row, metric, shot), printed in cells.items():
        matches = [k for k in got if k[0] == t and k[2] == metric and k[3] == shot
                   and (row == k[1] or re.match(re.escape(k[1]) + cite, row))]
        assert len(matches) == 1, (t, row, metric, shot, matches)
        assert got[matches[0]] == ("" if printed == "-" else printed), (t, row, metric, shot)


# ----------------------------------------------------------------------------------- records
def test_load_records_filters(tmp_path):
    put(tmp_path, fake_record(method="vanilla", seed=0))
    put(tmp_path, fake_record(method="vanilla", seed=1))
    put(tmp_path, fake_record(method="lds", seed=0))
    put(tmp_path, fake_record(dataset="sts-b-dir", method="vanilla", seed=0))
    put(tmp_path, fake_record(method="lds", seed=1, status="failed"))
    assert len(R.load_records(tmp_path)) == 5
    assert len(R.load_records(tmp_path, dataset="synthetic")) == 4
    assert len(R.load_records(tmp_path, dataset="synthetic", method="lds")) == 2
    assert len(R.load_records(tmp_path, method=["lds", "vanilla"], status="completed")) == 4
    assert [r["config"]["seed"] for r in R.load_records(tmp_path, dataset="synthetic", seed=1)] == [1, 1]
    assert R.load_records(tmp_path, no_such_key=3) == []
    assert all(Path(r["_path"]).name == "run.json" for r in R.load_records(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        R.load_records(tmp_path / "nope")
    (tmp_path / "records" / "bad").mkdir()
    (tmp_path / "records" / "bad" / "run.json").write_text("{trunc")
    bad = tmp_path / "records" / "bad" / "run.json"
    with pytest.warns(UserWarning, match=rf"1 run record\(s\) refused:\n  {bad}: unreadable"):
        assert len(R.load_records(tmp_path)) == 5          # the others are still read
    with pytest.raises(R.RecordError, match=rf"{bad}: unreadable"):
        R.load_records(tmp_path, strict=True)


def test_summary_table_mean_std(tmp_path):
    recs = [fake_record(method="vanilla", seed=s) for s in (0, 1, 2)] + \
           [fake_record(method="lds", seed=s) for s in (0, 1)] + \
           [fake_record(method="ranksim", seed=0)]
    df = R.summary_table(recs, metrics=("mae", "gm"))
    assert list(df.columns) == ["dataset", "method", "shot", "n_seeds", "seeds", "n",
                                "mae_mean", "mae_std", "gm_mean", "gm_std"]
    assert len(df) == 3 * 4 and list(df["method"].unique()) == ["lds", "ranksim", "vanilla"]
    for method, group in (("vanilla", recs[:3]), ("lds", recs[3:5])):
        for shot in SHOTS:
            row = df[(df.method == method) & (df.shot == shot)].iloc[0]
            vals = [r["test"][shot]["mae"] for r in group]
            # slow reference: textbook mean and sample std
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
            assert row["mae_mean"] == pytest.approx(mean, rel=1e-12)
            assert row["mae_std"] == pytest.approx(std, rel=1e-12)
            assert row["n_seeds"] == len(group) and row["n"] == group[0]["test"][shot]["n"]
    single = df[df.method == "ranksim"]
    assert single["mae_std"].isna().all() and (single["seeds"] == "0").all()
    fmt = R.format_table(df)
    assert fmt.loc["ranksim", ("MAE", "all")] == f"{single.iloc[0]['mae_mean']:.2f}"
    assert " ± " in fmt.loc["vanilla", ("GM", "few")]


def test_summary_table_null_metric_gives_nan_not_a_silent_mean():
    a, b = fake_record(seed=0), fake_record(seed=1)
    b["test"]["few"]["mae"] = None
    df = R.summary_table([a, b])
    assert math.isnan(df[df.shot == "few"]["mae_mean"].iloc[0])
    assert not math.isnan(df[df.shot == "all"]["mae_mean"].iloc[0])
    with pytest.raises(ValueError, match="'pearsonx' is not in test"):
        R.summary_table([a], metrics=("pearsonx",))


def test_summary_table_refuses_different_data():
    a = fake_record(seed=0, data_hash="aaaaaaaaaaaaaaaa")
    b = fake_record(seed=1, data_hash="bbbbbbbbbbbbbbbb")
    with pytest.raises(ValueError, match="aaaaaaaaaaaaaaaa.*bbbbbbbbbbbbbbbb"):
        R.summary_table([a, b])
    c = fake_record(method="lds", seed=0, data_hash="bbbbbbbbbbbbbbbb")  # across methods too
    with pytest.raises(ValueError, match="different data"):
        R.summary_table([a, c])


def test_summary_table_refuses_configs_that_differ_beyond_the_seed():
    a = fake_record(seed=0, epochs=10)
    b = fake_record(seed=1, epochs=20)
    with pytest.raises(ValueError) as e:
        R.summary_table([a, b])
    msg = str(e.value)
    assert a["config_hash"] in msg and b["config_hash"] in msg and "epochs: 10 vs 20" in msg
    # run-time-only keys may differ
    c = fake_record(seed=1, epochs=10, device="cuda", progress=False, num_workers=4)
    assert len(R.summary_table([a, c])) == 4
    # a seed twice is an error, not a double count
    with pytest.raises(ValueError, match="seed 0 appears twice"):
        R.summary_table([a, fake_record(seed=0, epochs=10)])


def test_summary_table_only_completed_and_warns():
    ok = [fake_record(seed=0), fake_record(seed=1)]
    bad = fake_record(seed=2, status="failed")
    bad["_path"] = "x/failed/run.json"
    running = fake_record(seed=3, status="running")
    with pytest.warns(UserWarning, match=r"2 run record\(s\) not completed.*x/failed/run.json"):
        df = R.summary_table(ok + [bad, running])
    assert (df["n_seeds"] == 2).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty = R.summary_table([bad])
    assert empty.empty and "mae_mean" in empty.columns


def test_write_table_atomic_roundtrip(tmp_path):
    df = R.summary_table([fake_record(seed=s) for s in (0, 1)])
    p = R.write_table(df, tmp_path / "sub" / "t.csv")
    assert p.exists() and [q.name for q in p.parent.iterdir()] == ["t.csv"]  # no temp file left
    back = pd.read_csv(p, dtype={"seeds": str})
    pd.testing.assert_frame_equal(back, df, check_dtype=False, rtol=1e-9)
    first = p.read_text()
    R.write_table(df, p)
    assert p.read_text() == first  # deterministic bytes


def test_cli_no_records_writes_header_only(tmp_path):
    (tmp_path / "res").mkdir()
    assert R.main(["tables", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.csv").read_text().strip() == ",".join(R.INDEX_COLUMNS)
    assert R.main(["tables", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1


def test_cli_regenerates_per_dataset_tables(tmp_path, capsys):
    res = tmp_path / "res"
    for s in (0, 1):
        put(res, fake_record(method="vanilla", seed=s))
        put(res, fake_record(method="lds", seed=s))
        put(res, fake_record(dataset="sts-b-dir", method="vanilla", seed=s, data_hash="s" * 16))
    put(res, fake_record(method="lds", seed=2, status="failed"))
    assert R.main(["tables", "--results", str(res), "--out", str(tmp_path / "out")]) == 0
    assert "not completed" in capsys.readouterr().err
    idx = pd.read_csv(tmp_path / "out" / "index.csv")
    assert list(idx["dataset"]) == ["sts-b-dir", "synthetic"] and list(idx["n_records"]) == [2, 4]
    syn = pd.read_csv(tmp_path / "out" / "synthetic.csv")
    assert "mae_mean" in syn.columns and len(syn) == 8
    sts = pd.read_csv(tmp_path / "out" / "sts-b-dir.csv")
    assert {"mse_mean", "pearson_mean"} <= set(sts.columns) and "mae_mean" not in sts.columns
    expect = R.summary_table(R.load_records(res, dataset="synthetic", status="completed"))
    pd.testing.assert_frame_equal(syn, expect, check_dtype=False, rtol=1e-9)
    # another protocol (e.g. a short run) gets a table of its own, named after it
    put(res, fake_record(method="vanilla", seed=5, epochs=99))
    assert R.main(["tables", "--results", str(res), "--out", str(tmp_path / "out2")]) == 0
    idx2 = pd.read_csv(tmp_path / "out2" / "index.csv")
    assert idx2["table"].iloc[0] == "sts-b-dir"
    assert idx2["table"].iloc[1].startswith("synthetic-e10-") and idx2["n_records"].iloc[1] == 4
    assert idx2["table"].iloc[2].startswith("synthetic-e99-") and idx2["n_records"].iloc[2] == 1
    # another setting of a method is another row of the table (not a conflict) ...
    put(res, fake_record(method="vanilla", seed=6, method_kwargs={"x.y": 1}), name="kw/vanilla/seed6")
    assert R.main(["tables", "--results", str(res), "--out", str(tmp_path / "out3")]) == 0
    # ... and a seed of one setting counted twice makes the CLI fail loudly
    put(res, fake_record(method="vanilla", seed=6, method_kwargs={"x.y": 1}), name="copy/vanilla/seed6")
    capsys.readouterr()
    assert R.main(["tables", "--results", str(res), "--out", str(tmp_path / "out4")]) == 1
    assert "appears twice" in capsys.readouterr().err


@pytest.mark.artefacts
def test_committed_tables_match_regeneration(tmp_path):
    committed = ROOT / "results" / "tables"
    R.regenerate_tables(ROOT / "results", tmp_path)
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir()}
    if not committed.is_dir():
        pytest.fail("results/tables/ is missing: run python -m dirlib results tables")
    old = {p.name: p.read_text() for p in committed.iterdir() if p.suffix == ".csv"}
    assert old == fresh, ("results/tables/ is stale: rerun "
                          "`python -m dirlib results tables --results results/ --out results/tables/`")


# ----------------------------------------------------------------------------------- method vs base
def _mae_recs(method, values):
    return [fake_record(method=method, seed=k, mae={s: v for s in SHOTS}) for k, v in enumerate(values)]


def test_paired_effects_pair_by_seed_and_leave_out_unpaired_runs():
    base = _mae_recs("vanilla", [10.0, 11.0, 12.0])
    meth = _mae_recs("frobenius", [7.5, 8.0, 9.5, 3.0])      # seed 3 has no base: left out
    d = R.paired_effects(meth, base, "mae", shots=("few",))["few"]
    # differences -2.5, -3, -2.5: mean -8/3, sd 0.2887, t(0.975, 2) = 4.3027
    assert d.n == 3 and d.mean == pytest.approx(-8 / 3)
    half = 4.302652729911275 * math.sqrt(1 / 12) / math.sqrt(3)
    assert (d.lo, d.hi) == (pytest.approx(-8 / 3 - half), pytest.approx(-8 / 3 + half))
    assert d.detectable and d.direction == -1
    assert R.paired_effects(meth[:1], base, "mae", shots=("few",))["few"].n == 1   # interval NaN


def test_compute_used_sums_wall_time_per_dataset_and_device():
    a = fake_record(method="vanilla", seed=0)
    a.update(wall_time_s=1800.0, device="cpu", versions={"torch_threads": 1})
    b = fake_record(method="lds", seed=0)
    b.update(wall_time_s=3600.0, device="cpu", versions={"torch_threads": 1})
    g = fake_record(method="lds", seed=1)
    g.update(wall_time_s=360.0, device="cuda", versions={"torch_threads": 1, "cuda_device": "NVIDIA H200"})
    n = fake_record(method="oe", seed=0)
    n.update(device="cpu", versions={"torch_threads": 1})             # no time recorded
    f = fake_record(method="oe", seed=1, status="failed")
    df = R.compute_used([a, b, g, n, f]).set_index("device")
    assert df.loc["cpu", "runs"] == 3 and df.loc["cpu", "hours"] == pytest.approx(1.5)
    assert df.loc["cpu", "missing_time"] == 1
    assert df.loc["NVIDIA H200", "hours"] == pytest.approx(0.1) and df.loc["NVIDIA H200", "runs"] == 1


# ----------------------------------------------------------------------------------- README block
def test_readme_block_is_generated_from_records_and_checked(tmp_path):
    res = tmp_path / "res"
    for k, m in enumerate(["vanilla", "frobenius"]):
        for seed in (0, 1):
            put(res, fake_record("utkface-dir", m, seed, mae={s: 5.0 + k + seed for s in SHOTS}))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{R.README_BEGIN}\nold\n{R.README_END}\n\ntail\n")
    assert not R.update_readme(res, readme, check=True)
    assert R.update_readme(res, readme)
    text = readme.read_text()
    assert text.startswith("# x\n\nintro\n\n") and text.endswith(f"{R.README_END}\n\ntail\n")
    # vanilla: 5, 6 -> 5.50 ± 0.71; the paper's method (+1) is the "Ours" row after it
    assert "| Vanilla | 5.50 ± 0.71 | 5.50 ± 0.71 | 5.50 ± 0.71 | 5.50 ± 0.71 | 2 |" in text
    assert text.index("| Vanilla |") < text.index("| Ours | 6.50 ± 0.71")
    assert "paper's Vanilla, AgeDB-DIR (transcribed" in text and "*7.77*" in text
    assert "**sts-b-dir**: no completed run records yet." in text
    assert R.update_readme(res, readme, check=True)
    assert R.main(["readme", "--results", str(res), "--readme", str(readme), "--check"]) == 0
    put(res, fake_record("utkface-dir", "lds", 0))
    assert R.main(["readme", "--results", str(res), "--readme", str(readme), "--check"]) == 1
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="README.md has no generated block"):
        R.update_readme(res, readme)


@pytest.mark.artefacts
def test_committed_readme_results_match_the_records():
    assert R.update_readme(ROOT / "results", ROOT / "README.md", check=True), (
        "README.md's results block is stale: run python -m dirlib results readme")


def test_main_protocol_prefers_distinct_runs_then_records_then_latest():
    five = [fake_record(method=m, seed=s, epochs=5) for m in ("vanilla", "lds") for s in (0, 1, 2)]
    twenty = [fake_record(method=m, seed=0, epochs=20) for m in ("vanilla", "lds", "oe")]
    pk = lambda recs: R.protocol_key(recs[0]["config"])  # noqa: E731
    keyed = [(R.run_key(r["config"]), r) for r in five + twenty]
    assert R.main_protocol(keyed) == pk(twenty)                 # 3 runs beat 2 runs x 3 seeds
    keyed = [(R.run_key(r["config"]), r) for r in five + twenty[:2]]
    assert R.main_protocol(keyed) == pk(five)                   # same runs: more records
    a, b = fake_record(seed=0, epochs=5), fake_record(seed=0, epochs=9)
    a["finished"], b["finished"] = "2026-01-01T00:00:00", "2026-02-01T00:00:00"
    assert R.main_protocol([("x", a), ("x", b)]) == pk([b])     # then the latest
    assert R.main_protocol([]) is None


@pytest.mark.artefacts
def test_withdrawn_bmse_numbers_quoted_in_the_docs_match_the_kept_record():
    import json
    rec = json.loads((ROOT / "results" / "withdrawn" / "sts-b-dir_bmc_init-sigma-1_seed0.json").read_text())
    assert rec["method_info"]["bmc"]["init_sigma"] == 1.0
    t = rec["test"]
    quoted = (f"test MSE {t['all']['mse']:.2f} all / {t['many']['mse']:.2f} many / "
              f"{t['median']['mse']:.2f} median / {t['few']['mse']:.2f} few")
    assert quoted in (ROOT / "docs" / "baseline-defaults.md").read_text()
    assert not any(p.name == "run.json" for p in (ROOT / "results" / "withdrawn").iterdir())


@pytest.mark.artefacts
def test_the_docs_quote_the_oe_rerun_times_of_its_records():
    """The UTKFace-DIR OE rerun's run times in docs/reproduction.md and the folder's README are
    the records' ``wall_time_s`` (rounded to the second), not numbers of their own."""
    import json
    recs = [json.loads((ROOT / "results" / "runs" / "utkface-dir" / "oe" / f"seed{k}" / "run.json").read_text())
            for k in (0, 1, 2)]
    want = [f"{round(r['wall_time_s'])} s" for r in recs]
    row = next(line for line in (ROOT / "docs" / "reproduction.md").read_text().splitlines()
               if line.startswith("| UTKFace-DIR OE"))
    readme = (ROOT / "results" / "runs" / "utkface-dir" / "README.md").read_text()
    for w in want:
        assert w in row and w in readme, (w, row)
    assert [r["device"] for r in recs] == ["cpu"] * 3
