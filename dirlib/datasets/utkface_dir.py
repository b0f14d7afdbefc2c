"""UTKFace-DIR: UTKFace part 1 faces split as the DIR benchmark splits AgeDB (balanced val/test of
10 per age), the real face-age stand-in for AgeDB-DIR here."""
NAME = "utkface-dir"
TITLE = "UTKFace-DIR"
FAMILY = "age"
MAIN_METRIC = "mae"
IMAGES = True
RECIPE = dict(batch_size=64, lr=1e-3, epochs=10, img_size=64)

#: the DIR benchmark's FDS buckets (fds.py) and the label grid of Dist Loss (agedb-dir/train.py)
BUCKETS = dict(first=0, last=99, start=3)
LABEL_GRID = (0.0, 120.0, 1.0)


def files(root):
    return [root / "utkface" / "crop_part1"]


def load(data_dir=None, **kwargs):
    from ..data.faces import load_utkface
    return load_utkface(data_dir=data_dir, **kwargs)
