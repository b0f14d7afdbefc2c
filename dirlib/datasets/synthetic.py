"""The synthetic task: long-tailed labels, features that encode them with noise (no files)."""
NAME = "synthetic"
TITLE = "the synthetic task"
FAMILY = "age"
MAIN_METRIC = "mae"
IMAGES = False
RECIPE = dict(batch_size=64, lr=1e-3, epochs=10)
#: small enough for the book's quick runs to train on all of it, for 5 epochs
SMALL = True
QUICK = dict(epochs=5)


def files(root):
    return []


def load(data_dir=None, **kwargs):
    from ..data.synthetic import load_synthetic
    return load_synthetic(**kwargs)
