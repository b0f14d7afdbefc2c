"""Datasets: one file each, found by a catalog; a table of your own through a TOML dataset file;
no module outside the dataset files compares a dataset name; the README's two examples run."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dirlib.datasets as D
from dirlib.datasets.table import SpecError, draw_balanced, load_table

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("sts-b-dir", "utkface-dir", "agedb-dir", "imdb-wiki-dir", "synthetic")


def test_no_module_outside_the_dataset_files_compares_a_dataset_name():
    names = "|".join(re.escape(n) for n in NAMES)
    pattern = re.compile(rf'(==|!=)\s*"({names})"|"({names})"\s*(==|!=)|\bin\s*\(\s*"({names})"')
    hits = []
    for f in sorted((ROOT / "dirlib").rglob("*.py")):
        if f.parent.name == "datasets":
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)
    # the rule can fail: a line that compares is caught
    assert pattern.search('if data.name == "sts-b-dir":')


def test_the_catalog_holds_every_dataset_with_its_declarations():
    assert set(D.names()) == set(NAMES)
    sts, utk = D.get("sts-b-dir"), D.get("utkface-dir")
    assert (sts.family, sts.main_metric, sts.images, sts.default_loss) == ("sts", "mse", False, "mse")
    assert (utk.family, utk.main_metric, utk.images, utk.recipe["img_size"]) == ("age", "mae", True, 64)
    assert utk.buckets == {"first": 0, "last": 99, "start": 3}
    with pytest.raises(ValueError, match="unknown dataset 'nope'; valid: agedb-dir"):
        D.get("nope")


def _table(tmp_path, n=600, split=False, **spec):
    rng = np.random.RandomState(0)
    y = np.minimum(rng.geometric(0.2, n) - 1, 30)
    x1 = y + rng.randn(n)
    rows = ["y,x1,x2" + (",split" if split else "")]
    for i in range(n):
        s = f",{'train' if i < n - 100 else ('val' if i < n - 50 else 'test')}" if split else ""
        rows.append(f"{y[i]},{x1[i]:.4f},{rng.randn():.4f}{s}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    body = {"name": "a table", "path": "t.csv", "target": "y", "bin_width": 1, **spec}
    if split:
        body["split"] = "split"
    lines = []
    for k, v in body.items():
        if isinstance(v, dict):
            continue
        lines.append(f"{k} = {json.dumps(v)}")
    for k, v in body.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()]
    (tmp_path / "t.toml").write_text("\n".join(lines) + "\n")
    return tmp_path / "t.toml", y


def test_a_table_without_a_split_is_drawn_balanced_per_bin_and_recorded(tmp_path):
    spec, y = _table(tmp_path, draw={"per_bin": 5, "seed": 3})
    data = load_table(spec)
    counts = np.bincount(data.binning.index(data.test_labels), minlength=data.binning.n_bins)
    per_bin = np.bincount(data.binning.index(y.astype(float)), minlength=data.binning.n_bins)
    assert counts.tolist() == np.minimum(5, per_bin // 3).tolist()      # balanced, as the DIR splits
    assert data.info["split"] == {"drawn": "balanced per bin", "per_bin": 5, "seed": 3}
    assert len(data.train_labels) + len(data.val_labels) + len(data.test_labels) == len(y)
    # the same seed draws the same split; features standardised on the training split
    again = load_table(spec)
    assert np.array_equal(again.test_labels, data.test_labels)
    assert abs(float(data.train.x[:, 0].mean())) < 1e-4


def test_a_split_column_is_used_as_it_is(tmp_path):
    spec, _ = _table(tmp_path, split=True)
    data = load_table(spec)
    assert (len(data.train_labels), len(data.val_labels), len(data.test_labels)) == (500, 50, 50)
    assert data.info["split"] == {"column": "split"}


@pytest.mark.parametrize("edit,msg", [
    ('target = "nope"', "no column(s) ['nope']"),
    ('colour = "red"', "unknown key(s) ['colour']"),
    ('task_family = "fish"', "task_family must be age or sts"),
])
def test_a_bad_dataset_file_names_the_file_and_the_key(tmp_path, edit, msg):
    spec, _ = _table(tmp_path)
    text = spec.read_text().replace('target = "y"', edit) if edit.startswith("target") else \
        spec.read_text().replace('name = "a table"', f'name = "a table"\n{edit}')
    spec.write_text(text)
    with pytest.raises(SpecError, match=re.escape(msg)):
        load_table(spec)


def test_draw_balanced_takes_at_most_a_third_of_each_bin():
    from dirlib.data.base import Binning
    y = np.repeat(np.arange(4.0), [30, 6, 2, 1])
    tr, va, te = draw_balanced(y, Binning.integer(0, 3), per_bin=10, seed=0)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(len(y)))
    assert np.bincount(y[va].astype(int), minlength=4).tolist() == [10, 2, 0, 0]


def readme_block(title: str, lang: str) -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(rf"## {re.escape(title)}.*?```{lang}\n(.*?)```", text, re.S).group(1)


def test_readme_add_a_dataset_is_one_file(tmp_path, monkeypatch):
    from dirlib.experiment import run_experiment
    from dirlib.train import RunConfig
    (tmp_path / "noisy_synthetic.py").write_text(readme_block("Add a dataset", "python"))
    monkeypatch.setattr(D, "__path__", list(D.__path__) + [str(tmp_path)])
    sys.modules.pop("dirlib.datasets.noisy_synthetic", None)
    D.catalog.cache_clear()
    try:
        assert "noisy-synthetic" in D.names()
        cfg = RunConfig.for_dataset("noisy-synthetic", epochs=1, progress=False, diagnostics=False)
        assert (cfg.batch_size, cfg.lr) == (64, 1e-3)
        rec = run_experiment(cfg, tmp_path / "run")
        assert rec["status"] == "completed" and rec["data"]["name"] == "noisy-synthetic"
    finally:
        sys.modules.pop("dirlib.datasets.noisy_synthetic", None)
        D.catalog.cache_clear()


def test_readme_table_example_runs_as_written(tmp_path):
    """The README's commands, in a scratch folder (the book step executes its page there too)."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "randhie.toml").write_text((ROOT / "examples" / "randhie.toml").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for line in readme_block("Use your own table, with no Python", "bash").splitlines():
        cmd = shlex.split(line.split("  #")[0])
        if not cmd:
            continue
        cmd[0] = sys.executable if cmd[0] == "python" else cmd[0]
        if cmd[1:4] == ["-m", "dirlib", "book"]:
            # the page, executed as `book run` does, into the scratch folder
            from dirlib.paper import book as B
            pytest.importorskip("papermill")
            params = B.resolve_params(B.load_params("quick"), "fig1_shot_errors")
            sets = dict(kv.split("=", 1) for kv in cmd[cmd.index("--set") + 1:])
            assert sets["DATASET"] == "examples/randhie.toml"
            params.update(DATASET=str(tmp_path / "examples" / "randhie.toml"), SOURCE=sets["SOURCE"],
                          SEEDS=json.loads(sets["SEEDS"]), EPOCHS=int(sets["EPOCHS"]),
                          METHODS=json.loads(sets["METHODS"]))
            B.execute("fig1_shot_errors", params, out_dir=tmp_path / "book")
            nb = json.loads((tmp_path / "book" / "fig1_shot_errors.ipynb").read_text())
            text = json.dumps(nb["cells"])
            assert "On RAND HIE outpatient visits" in text and '"ename"' not in text
            continue
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"
    recs = sorted((tmp_path / "runs").rglob("run.json"))
    assert len(recs) == 6          # train, 4 sweep runs, the post-hoc arm
    assert all(json.loads(p.read_text())["status"] == "completed" for p in recs)
    rec = json.loads((tmp_path / "runs" / "randhie" / "lds" / "run.json").read_text())
    assert rec["config"]["dataset"] == "examples/randhie.toml" and rec["data"]["n_test"] == 263
