"""Every registered method through the trainer on the AgeDB-DIR and IMDB-WIKI-DIR on-disk layouts.

Their images cannot be obtained here, so the layouts are generated: real rows of the shared
``agedb.csv`` (ages and relative paths; reused, relabelled, for an ``imdb_wiki.csv``) with small
random JPEGs at those paths. The point is the pipeline (loader -> two views -> every method ->
record), not the numbers."""
import numpy as np
import pytest

from dirlib.data.faces import load_agedb, load_imdb_wiki
from dirlib.experiment import run_experiment
from dirlib.methods import method_names
from dirlib.train import RunConfig
from helpers import first_rows_per_split

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the DIR benchmark:UserWarning")


def _tree(root, data_dir, folder, csv_name, per_split=24):
    from PIL import Image
    rows = first_rows_per_split((data_dir / "agedb-dir" / "agedb.csv").read_text().splitlines(), per_split)
    (root / folder).mkdir(parents=True)
    (root / folder / csv_name).write_text("age,path,split\n" + "\n".join(rows) + "\n")
    rng = np.random.RandomState(0)
    for r in rows:
        p = root / folder / r.split(",")[1]
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.randint(0, 255, (36, 36, 3), dtype=np.uint8)).save(p)
    return root


@pytest.fixture(scope="module")
def faces(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("faces")
    _tree(root, data_dir, "agedb-dir", "agedb.csv")
    _tree(root, data_dir, "imdb-wiki-dir", "imdb_wiki.csv")
    return {"agedb-dir": load_agedb(root, img_size=32, progress=False),
            "imdb-wiki-dir": load_imdb_wiki(root, img_size=32, progress=False)}


def _run(method, dataset, faces, tmp_path):
    cfg = RunConfig(dataset=dataset, method=method, epochs=1, batch_size=8, max_batches=1,
                    progress=False, diagnostics=False)
    rec = run_experiment(cfg, tmp_path, data=faces[dataset])
    assert rec["status"] == "completed" and rec["test"]["all"]["n"] == 24
    assert np.isfinite(rec["test"]["all"]["mae"])


@pytest.mark.parametrize("method", method_names())
def test_every_method_on_generated_agedb_layout(method, faces, tmp_path):
    if method == "frobenius":
        # 24 training images: no label has > 100 samples, so phase 2 has nothing to fit on.
        # That is said before any training, not after phase 1.
        with pytest.raises(ValueError, match="needs at least 2"):
            _run(method, "agedb-dir", faces, tmp_path)
        return
    _run(method, "agedb-dir", faces, tmp_path)


@pytest.mark.parametrize("method", ["vanilla", "lds+fds", "conr", "frobenius_reg", "ranksim+frobenius_reg"])
def test_methods_on_generated_imdb_wiki_layout(method, faces, tmp_path):
    _run(method, "imdb-wiki-dir", faces, tmp_path)
