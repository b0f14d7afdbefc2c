"""AgeDB-DIR (Yang et al. 2021): the benchmark's split file over the AgeDB images."""
NAME = "agedb-dir"
TITLE = "AgeDB-DIR"
FAMILY = "age"
MAIN_METRIC = "mae"
IMAGES = True
#: the benchmark's recipe (agedb-dir/train.py)
RECIPE = dict(batch_size=64, lr=1e-3, epochs=90, img_size=224, lr_milestones=(60, 80))

#: the DIR benchmark's FDS buckets (fds.py) and the label grid of Dist Loss (agedb-dir/train.py)
BUCKETS = dict(first=0, last=99, start=3)
LABEL_GRID = (0.0, 120.0, 1.0)


def files(root):
    return [root / "agedb-dir" / "agedb.csv", root / "agedb-dir" / "AgeDB"]


def load(data_dir=None, **kwargs):
    from ..data.faces import load_agedb
    return load_agedb(data_dir=data_dir, **kwargs)
