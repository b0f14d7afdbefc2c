"""Every first-round baseline (and the paper's method on top of some) on the real datasets, one
short CPU epoch each on small subsets (loaded once per module)."""
import numpy as np
import pytest

from dirlib.datasets import load_dataset
from dirlib.experiment import run_experiment
from dirlib.train import RunConfig

METHODS = ["vanilla", "inv", "sqinv", "lds", "fds", "lds+fds", "focal", "rrt", "bmc", "gai", "bni",
           "ranksim", "oe", "conr", "frobenius", "ranksim+frobenius", "lds+fds+frobenius"]


@pytest.fixture(scope="module")
def real(data_dir):
    return {
        "sts-b-dir": load_dataset("sts-b-dir", data_dir=data_dir),
        "utkface-dir": load_dataset("utkface-dir", data_dir=data_dir, img_size=32, progress=False),
    }


@pytest.mark.parametrize("dataset", ["sts-b-dir", "utkface-dir"])
@pytest.mark.parametrize("method", METHODS)
def test_method_on_real_data(method, dataset, real, tmp_path):
    data = real[dataset]
    cfg = RunConfig(dataset=dataset, method=method, epochs=2, batch_size=32, max_batches=2,
                    subset_train=256, subset_eval=96, progress=False, diagnostics=False,
                    model_kwargs={"hidden": 16} if dataset == "sts-b-dir" else {},
                    method_kwargs={"frobenius.sft_epochs": 1} if "frobenius" in method else {})
    rec = run_experiment(cfg, tmp_path, data=data)
    assert rec["status"] == "completed"
    t = rec["test"]
    assert t["all"]["n"] == 96 and np.isfinite(t["all"]["mae"])
    # shots follow the full training counts, so all three are present in the balanced subset
    assert t["many"]["n"] > 0 and t["few"]["n"] > 0


def test_subset_keeps_full_shot_definition(real):
    d = real["utkface-dir"]
    s = d.subset(500, 200, seed=1)
    assert len(s.train) == 500 and len(s.test) == 200 and len(s.val) == 200
    np.testing.assert_array_equal(s.shots(s.test_labels), d.shots(s.test_labels))
    x, y, j = s.test[5]
    assert j == 5 and float(y) == s.test_labels[5]
    # the balanced eval subset spreads over labels as evenly as possible
    # (200 over 94 test ages: at most 3 per age; ages with fewer test images give what they have)
    _, counts = np.unique(s.test_labels, return_counts=True)
    assert counts.max() <= 3 and len(counts) == len(np.unique(d.test_labels))
