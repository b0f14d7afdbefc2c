"""Every registered method trained end to end once per data path. The point is the pipeline
(loader -> batches or two views -> method -> record), not the numbers.

* **arrays**: your own arrays (``from_arrays``: float labels, bins of width 4, a long tail) and your
  own encoder, through ``dirlib.run``; the synthetic benchmark takes this path too.
* **images**: the AgeDB-DIR on-disk layout. Its images cannot be had here, so it is generated: real
  rows of the shared ``agedb.csv`` (ages and relative paths) with small random JPEGs at those paths.
  IMDB-WIKI-DIR's layout (the same rows, relabelled) trains one method: its loader differs, the path
  after it does not.
* **text**: real STS-B-DIR (GloVe vectors, BiLSTM) on small subsets, with the full training counts'
  shots.

The methods' own behaviour is tested in the other files of this folder; the CLI's path on the real
data in ``tests/core/test_cli_real_data.py``."""
import numpy as np
import pytest

import dirlib
from dirlib.data.faces import load_agedb, load_imdb_wiki
from dirlib.datasets import load_dataset
from dirlib.experiment import run_experiment
from dirlib.methods import build_method, method_names
from dirlib.train import RunConfig
from helpers import TwoLayer, first_rows_per_split, long_tail_arrays, write_face_tree

METHODS = method_names()


# ----------------------------------------------------------------------------------- arrays
@pytest.fixture(scope="module")
def arrays():
    return long_tail_arrays()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_arrays_with_a_user_encoder(arrays, method):
    rec = dirlib.run(method, arrays, encoder=TwoLayer(), epochs=1, seed=0, batch_size=64,
                     diagnostics=False)
    assert rec["status"] == "completed", rec.get("error")
    assert rec["config"]["model"].startswith("custom:TwoLayer")
    t = rec["test"]
    assert np.isfinite(t["all"]["mae"]) and t["all"]["n"] == len(arrays.test_labels)
    assert {"many", "median", "few"} <= set(t)
    assert rec["data"]["task_family"].startswith("age (unstated")      # the record says which defaults


# ----------------------------------------------------------------------------------- images
@pytest.fixture(scope="module")
def faces(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("faces")
    rows = first_rows_per_split((data_dir / "agedb-dir" / "agedb.csv").read_text().splitlines(), 24)
    write_face_tree(root / "agedb-dir", "agedb.csv", rows, size=(36, 36))
    write_face_tree(root / "imdb-wiki-dir", "imdb_wiki.csv", rows, size=(36, 36))
    with pytest.warns(UserWarning, match="differs from the DIR benchmark"):
        return {"agedb-dir": load_agedb(root, img_size=32, progress=False),
                "imdb-wiki-dir": load_imdb_wiki(root, img_size=32, progress=False)}


def _run_faces(method, dataset, faces, tmp_path):
    cfg = RunConfig(dataset=dataset, method=method, epochs=1, batch_size=8, max_batches=1,
                    progress=False, diagnostics=False)
    rec = run_experiment(cfg, tmp_path, data=faces[dataset])
    assert rec["status"] == "completed" and rec["test"]["all"]["n"] == 24
    assert np.isfinite(rec["test"]["all"]["mae"])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_the_agedb_image_layout(method, faces, tmp_path):
    if method == "frobenius":
        # 24 training images: no label has > 100 samples, so phase 2 has nothing to fit on.
        # That is said before any training, not after phase 1.
        with pytest.raises(ValueError, match="needs at least 2"):
            _run_faces(method, "agedb-dir", faces, tmp_path)
        return
    _run_faces(method, "agedb-dir", faces, tmp_path)


def test_the_imdb_wiki_layout_trains(faces, tmp_path):
    _run_faces("vanilla", "imdb-wiki-dir", faces, tmp_path)


def test_input_space_oversampling_refuses_images(faces):
    c = RunConfig(dataset="agedb-dir", method="smoter", method_kwargs={"smoter.space": "input"})
    with pytest.raises(ValueError, match="vector"):
        build_method(c, faces["agedb-dir"])


# ----------------------------------------------------------------------------------- text
@pytest.fixture(scope="module")
def stsb(data_dir):
    return load_dataset("sts-b-dir", data_dir=data_dir)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_real_stsb_text(method, stsb, tmp_path):
    kw = {"frobenius.sft_epochs": 1} if method == "frobenius" else {}
    if method in ("rnc", "supcr"):
        kw = {f"{method}.linear_epochs": 1}
    cfg = RunConfig(dataset="sts-b-dir", method=method, epochs=2, batch_size=32, max_batches=2,
                    subset_train=256, subset_eval=96, progress=False, diagnostics=False,
                    model_kwargs={"hidden": 16}, method_kwargs=kw)
    rec = run_experiment(cfg, tmp_path, data=stsb)
    assert rec["status"] == "completed", rec.get("error")
    t = rec["test"]
    assert t["all"]["n"] == 96 and np.isfinite(t["all"]["mse"])
    # shots follow the full training counts, so all three are present in the balanced subset
    assert t["many"]["n"] > 0 and t["few"]["n"] > 0
