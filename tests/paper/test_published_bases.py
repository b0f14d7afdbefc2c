"""The "0 of 122" check (dirlib.paper.published_bases) reproduces the counts stored in
results/published-bases.json, and a load that works is seen as working (the check can fail)."""
import json
from pathlib import Path

import pytest

from dirlib.paper import published_bases as pb

STORED = json.loads((Path(__file__).resolve().parents[2] / "results" / "published-bases.json")
                    .read_text())


@pytest.fixture(scope="module")
def result():
    return pb.check()


def test_the_stored_counts_are_reproduced(result):
    c = result["cases"]["RankSim/ConR base (ResNet-50 saved under DataParallel)"]
    for base in ("RankSim", "ConR"):
        assert c["loaded"] == STORED["bases"][base]["loaded"] == 0
        assert c["checkpoint_tensors"] == STORED["bases"][base]["checkpoint_tensors"] == 320
    assert c["names_found"] == 0 and c["resnet18_tensors"] == STORED["resnet18_tensors"] == 122
    assert c["reported_missing"] == 102          # 20 num_batches_tracked refill themselves
    pickled = result["cases"]["MSE/MAE/MSE_LDS base (a pickled module, torch.save(model))"]
    assert pickled["loaded"] is None and pickled["error"].startswith("TypeError")
    for base in ("MSE", "MAE", "MSE_LDS"):
        assert STORED["bases"][base]["loaded"] is None
    if result["train_sh_names"] is not None:
        assert result["train_sh_names"] == STORED["train_sh_names"]


def test_a_working_load_and_a_loud_failure_are_told_apart(result):
    ok = result["cases"]["a ResNet-18 saved without DataParallel (what a working load needs)"]
    assert ok["names_found"] == ok["loaded"] == 122 and ok["reported_missing"] == 0
    # only the DataParallel prefix makes the wrong depth load silently
    assert result["cases"]["a ResNet-50 saved without DataParallel"]["error"].startswith(
        "RuntimeError: size mismatch")
    assert result["cases"]["a ResNet-18 saved under DataParallel"]["names_found"] == 0
    text = pb.report(result)
    assert "0 of the ResNet-18's 122 tensor names found among the checkpoint's 320" in text
