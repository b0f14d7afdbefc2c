"""A table of your own (CSV or Parquet) as a dataset, described by a small TOML file, so that the
CLI, ``dirlib.tools.sweep``, ``posthoc`` and the book's ``DATASET`` parameter take it with no Python:

.. code-block:: toml

    name = "RAND HIE outpatient visits"   # how tables and pages name it
    path = "randhie.csv"                  # relative to this file; .csv or .parquet
    target = "mdvis"                      # the label column
    features = ["lncoins", "idp", "lpi"]  # optional: every other numeric column
    split = "split"                       # optional: a column of train / val / test
    task_family = "age"                   # optional: age | sts (which method defaults apply)
    main_metric = "mae"                   # optional: mae | mse
    loss = "l1"                           # optional: the runs' default loss (mse | l1 | huber | ...)
    bin_width = 1                         # optional (integer labels: one bin per integer)
    target_scale = 1.0                    # optional: the model regresses label / target_scale

    [draw]                                # without a split column: val and test drawn per bin
    per_bin = 10
    seed = 0

    [recipe]                              # optional RunConfig defaults (epochs, lr, ...)
    epochs = 20

Without a split column, validation and test are drawn **balanced per bin**, as the DIR benchmark
builds its splits: from each bin, up to ``per_bin`` samples each (at most a third of the bin each),
seeded; the rest trains. The draw is recorded in ``data.info["split"]``. Features are standardised
by the training split's mean and standard deviation (recorded in ``data.info["features"]``).
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

KNOWN_KEYS = {"name", "path", "target", "features", "split", "task_family", "main_metric", "loss",
              "bin_width", "edges", "target_scale", "many_thr", "few_thr", "draw", "recipe"}


class SpecError(ValueError):
    """A dataset file that cannot be read as a table dataset; the message names the file."""


def read_spec(path) -> dict:
    """The dataset file ``path``, checked: known keys, a table that exists, a target."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"dataset file {path} does not exist")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"dataset file {path}: not valid TOML ({e})") from None
    unknown = sorted(set(spec) - KNOWN_KEYS)
    if unknown:
        raise SpecError(f"dataset file {path}: unknown key(s) {unknown}; valid: "
                        f"{', '.join(sorted(KNOWN_KEYS))}")
    for key in ("path", "target"):
        if key not in spec:
            raise SpecError(f"dataset file {path}: the key {key!r} is required")
    table = (path.parent / spec["path"]).resolve()
    if not table.is_file():
        raise SpecError(f"dataset file {path}: its table {spec['path']} ({table}) does not exist")
    if table.suffix not in (".csv", ".parquet", ".pq"):
        raise SpecError(f"dataset file {path}: the table must be .csv or .parquet, got {table.name}")
    if spec.get("task_family") not in (None, "age", "sts"):
        raise SpecError(f"dataset file {path}: task_family must be age or sts, got "
                        f"{spec['task_family']!r}")
    if spec.get("main_metric", "mae") not in ("mae", "mse"):
        raise SpecError(f"dataset file {path}: main_metric must be mae or mse, got "
                        f"{spec['main_metric']!r}")
    from ..train import LOSSES, RunConfig
    import dataclasses
    bad_draw = sorted(set(spec.get("draw") or {}) - {"per_bin", "seed"})
    if bad_draw:
        raise SpecError(f"dataset file {path}: unknown key(s) {bad_draw} in [draw]; valid: per_bin, seed")
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    bad_recipe = sorted(set(spec.get("recipe") or {}) - fields)
    if bad_recipe:
        raise SpecError(f"dataset file {path}: unknown key(s) {bad_recipe} in [recipe]; valid: the "
                        f"run options (epochs, lr, batch_size, weight_decay, ...)")
    if "loss" in spec and spec["loss"] not in LOSSES:
        raise SpecError(f"dataset file {path}: loss must be one of {', '.join(LOSSES)}, got "
                        f"{spec['loss']!r}")
    spec["_table"] = table
    spec["_file"] = path
    return spec


def read_table(spec: dict):
    import pandas as pd
    table = spec["_table"]
    df = pd.read_parquet(table) if table.suffix in (".parquet", ".pq") else pd.read_csv(table)
    missing = [c for c in [spec["target"], *(spec.get("features") or []),
                           *([spec["split"]] if spec.get("split") else [])] if c not in df.columns]
    if missing:
        raise SpecError(f"{table}: no column(s) {missing} (the dataset file {spec['_file']} names "
                        f"them); it has {', '.join(map(str, df.columns))}")
    return df


def draw_balanced(labels: np.ndarray, binning, per_bin: int, seed: int):
    """``(train, val, test)`` index arrays: from each bin, up to ``per_bin`` samples for val and as
    many for test (each at most a third of the bin), seeded; the rest trains."""
    if not isinstance(per_bin, int) or per_bin < 1:
        raise ValueError(f"draw.per_bin must be an integer >= 1, got {per_bin!r}")
    rng = np.random.RandomState(seed)
    bins = binning.index(labels)
    tr, va, te = [], [], []
    for b in np.unique(bins):
        members = rng.permutation(np.flatnonzero(bins == b))
        k = min(per_bin, len(members) // 3)
        va += members[:k].tolist()
        te += members[k:2 * k].tolist()
        tr += members[2 * k:].tolist()
    return tuple(np.sort(np.asarray(v, dtype=np.int64)) for v in (tr, va, te))


#: loader arguments a table accepts from the run (``--data-arg``); it has no others
TABLE_ARGS = ()


def load_table(path, data_dir=None, name=None, **kwargs):
    """The :class:`~dirlib.data.base.DIRData` a dataset file describes (see the module docstring);
    ``name``: the data's name (default: the path as given). Loader arguments that a table has no
    use for (``--data-arg``) are refused by name, never ignored."""
    import warnings
    import pandas as pd
    ignored = sorted(k for k in kwargs if k not in TABLE_ARGS and k not in ("subset", "img_size"))
    if ignored:
        raise SpecError(f"dataset file {path}: a table takes no data argument {ignored} "
                        f"(--data-arg); its options are the file's keys (docs/table-datasets.md)")
    from ..data.arrays import from_arrays, make_binning
    spec = read_spec(path)
    df = read_table(spec)
    target, split_col = spec["target"], spec.get("split")
    feats = spec.get("features") or [c for c in df.columns if c not in (target, split_col)
                                     and np.issubdtype(df[c].dtype, np.number)]
    if not feats:
        raise SpecError(f"{spec['_table']}: no numeric feature column besides the target")
    if target in feats:
        warnings.warn(f"{spec['_table']} (dataset file {spec['_file']}): the target {target!r} is "
                      f"listed among the features: the model sees its own label", stacklevel=2)
    y = df[target].to_numpy(dtype=np.float64)
    x = df[feats].to_numpy(dtype=np.float32)
    where = f"{spec['_table']} (dataset file {spec['_file']})"
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        line = int(bad[0]) + 2 if spec["_table"].suffix == ".csv" else int(bad[0])
        raise SpecError(f"{where}: {len(bad)} row(s) without a finite {target!r}, the first at "
                        f"{'line' if spec['_table'].suffix == '.csv' else 'row'} {line}")
    if split_col:
        s = df[split_col].astype(str).str.lower().to_numpy()
        wrong = sorted(set(s) - {"train", "val", "test"})
        if wrong:
            raise SpecError(f"{where}: the split column {split_col!r} holds {wrong}; use "
                            f"train, val and test")
        idx = {k: np.flatnonzero(s == k) for k in ("train", "val", "test")}
        split_info = {"column": split_col}
    else:
        draw = spec.get("draw") or {}
        binning = make_binning(y, spec.get("bin_width"), spec.get("edges"))
        per_bin, seed = draw.get("per_bin", 10), draw.get("seed", 0)
        tr, va, te = draw_balanced(y, binning, per_bin, seed)
        idx = {"train": tr, "val": va, "test": te}
        split_info = {"drawn": "balanced per bin", "per_bin": per_bin, "seed": seed}
    for k, v in idx.items():
        if not len(v):
            raise SpecError(f"{where}: the {k} split is empty")
    # the same row (features and label) in training and in val/test: an optimistic evaluation
    rows = pd.DataFrame(x).assign(_y=y)
    train_keys = set(map(tuple, rows.iloc[idx["train"]].itertuples(index=False, name=None)))
    dup = {k: int(sum(tuple(r) in train_keys
                      for r in rows.iloc[idx[k]].itertuples(index=False, name=None)))
           for k in ("val", "test")}
    if any(dup.values()):
        warnings.warn(f"{where}: {dup['val']} validation and {dup['test']} test row(s) repeat a "
                      f"training row exactly (features and label)", stacklevel=2)
    mean = x[idx["train"]].mean(axis=0)
    std = x[idx["train"]].std(axis=0)
    std[~(std > 0)] = 1.0
    xs = (x - mean) / std
    try:
        data = from_arrays(xs[idx["train"]], y[idx["train"]], xs[idx["val"]], y[idx["val"]],
                           xs[idx["test"]], y[idx["test"]], bin_width=spec.get("bin_width"),
                           edges=spec.get("edges"), name=str(name or path),
                           many_thr=spec.get("many_thr", 100), few_thr=spec.get("few_thr", 20),
                           task_family=spec.get("task_family"),
                           main_metric=spec.get("main_metric", "mae"),
                           target_scale=spec.get("target_scale", 1.0), loss=spec.get("loss"))
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from None
    # each split's rows of the table (0-based data rows; the CSV line is row + 2): predictions name them
    data.extra["row_ids"] = {k: np.asarray(v, dtype=np.int64) for k, v in idx.items()}
    data.info.update({"source": "dirlib.datasets.table", "title": spec.get("name", str(path)),
                      "table": spec["_table"].name, "target": target, "split": split_info,
                      "features": {"columns": list(feats), "standardised": "train mean and sd"},
                      "sizes": {k: int(len(v)) for k, v in idx.items()}})
    return data


#: public tables that ship inside a PyPI package, for the README's example: where, and the sha256
#: of the file as published
EXAMPLES = {
    "randhie": {"package": "statsmodels.datasets.randhie", "file": "randhie.csv",
                "sha256": "9f6c87d05aef087a82cc4465310c8cd3f38327be6eafa43bd81fb98c4f3d088c",
                "what": "RAND Health Insurance Experiment (statsmodels): outpatient visits"},
}


def fetch_example(name: str, out) -> Path:
    """Copy the public table ``name`` (:data:`EXAMPLES`) from the package that ships it into the
    folder ``out``, after checking its sha256. Nothing is downloaded."""
    import hashlib
    import importlib
    if name not in EXAMPLES:
        raise ValueError(f"unknown example table {name!r}; known: {', '.join(EXAMPLES)}")
    ex = EXAMPLES[name]
    try:
        pkg = importlib.import_module(ex["package"])
    except ImportError:
        raise ValueError(f"example {name!r} ships with {ex['package'].split('.')[0]}: pip install "
                         f"{ex['package'].split('.')[0]}") from None
    src = Path(pkg.__file__).parent / ex["file"]
    data = src.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != ex["sha256"]:
        raise ValueError(f"{src}: sha256 {got} is not the published file's {ex['sha256']}")
    dest = Path(out) / ex["file"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def dataset_from_spec(name: str, path=None):
    """A :class:`dirlib.datasets.Dataset` for the dataset file ``name`` (found at ``path``): its
    name is the file's name as given, so records do not hold where it lies on this machine."""
    from . import Dataset
    path = Path(path or name)
    spec = read_spec(path)
    table = spec["_table"]
    return Dataset(name=str(name), title=spec.get("name", Path(name).stem),
                   family=spec.get("task_family") or "age",
                   main_metric=spec.get("main_metric", "mae"), images=False,
                   recipe=dict(spec.get("recipe") or {}),
                   table_metrics=(spec.get("main_metric", "mae"), "gm"),
                   files=lambda root, _t=table: [_t],
                   loader=lambda data_dir=None, _p=path, _n=str(name), **kw: load_table(
                       _p, data_dir, name=_n, **kw))
