"""dirlib.tools.benchmark: the plan as code equals docs/benchmark-plan.md, and one method runs
through the plan's machinery (halving, seeds, mirrored records, the cost check) on tiny data."""
import json
import re
from pathlib import Path

import pytest

from dirlib.data import load_synthetic
from dirlib.tools import benchmark
from helpers import SYN

ROOT = Path(__file__).resolve().parents[2]


def _fmt(v) -> str:
    return f"{v:g}"


def test_the_plan_page_and_the_code_agree():
    text = (ROOT / "docs" / "benchmark-plan.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `([a-z+]+)`[^|]*\|[^|]*\| ([^|]+) \|$", line)
        if m:
            rows[m.group(1)] = [v.strip() for v in m.group(2).split(",")]
    assert set(rows) == set(benchmark.METHODS)
    for method, (keys, values) in benchmark.SETTINGS.items():
        assert [float(v) for v in rows[method]] == [float(v) for v in values], method
    order = re.search(r"2\. STS-B-DIR methods: (.+?);\n\s+3\.", text, re.S).group(1)
    assert re.findall(r"`([a-z+]+)`", order) == list(benchmark.METHODS)
    assert f"**{len(benchmark.family())} cells**" in text
    lrs = re.search(r"learning rate in \{([^}]+)\}", text).group(1)
    assert [float(v) for v in lrs.split(",")] == list(benchmark.LRS)


def test_one_method_through_the_plan(tmp_path):
    data = load_synthetic(**SYN)
    recipe = {"train": {"epochs": 3, "data_kwargs": SYN, "diagnostics": False}, "halving": 1}
    benchmark.run("synthetic", ["vanilla"], work=tmp_path / "w", results=tmp_path / "r",
                  data=data, seeds=[0, 1], recipe=recipe, log=lambda m: None)
    res = tmp_path / "r" / "synthetic" / "vanilla"
    choice = json.loads((res / "choice.json").read_text())
    assert len(choice["trials"]) == 4 and sum(t["kept"] for t in choice["trials"]) == 2
    for seed in (0, 1):
        assert json.loads((res / f"seed{seed}" / "run.json").read_text())["status"] == "completed"
    cost = json.loads((res / "cost-check.json").read_text())
    assert cost["epochs_halving"] == 4 * 1 + 2 * 2 and cost["epochs_full"] == 12
    assert 0 < cost["wall_ratio"] < 1.5
    # the full search saw every trial at the full budget; halving's choice is among its points
    assert all(t["val_full"] > 0 for t in cost["trials"])
    assert cost["same_choice"] == (cost["full_choice"] == choice["chosen"])
    # paused trials stay in the work folder: only completed records are mirrored
    for p in (tmp_path / "r").rglob("run.json"):
        assert json.loads(p.read_text())["status"] == "completed"
    # a later session without the work folder resumes from the stored records: nothing retrains
    import shutil
    shutil.rmtree(tmp_path / "w")
    said = []
    benchmark.run("synthetic", ["vanilla"], work=tmp_path / "w", results=tmp_path / "r",
                  data=data, seeds=[0, 1], recipe=recipe, log=said.append)
    assert any(m.startswith("restored") for m in said)
    again = json.loads((res / "choice.json").read_text())
    assert again["chosen"] == choice["chosen"]
    assert json.loads((res / "seed1" / "run.json").read_text())["attempts"] == \
        json.loads((tmp_path / "w" / "synthetic" / "vanilla" / "seed1" / "run.json").read_text())["attempts"]


def test_an_unavailable_method_is_skipped_by_name(tmp_path):
    said = []
    benchmark.run("synthetic", ["nosuchmethod"], work=tmp_path, results=tmp_path, data=None,
                  recipe={"train": {}, "halving": 1}, log=said.append)
    assert not benchmark.available("nosuchmethod") and benchmark.available("denseweight")
    assert len(said) == 1 and "nosuchmethod: not in this library's catalog" in said[0]
