"""STS-B-DIR (Yang et al. 2021): sentence-pair similarity, 0-5, from the GLUE STS-B splits."""
NAME = "sts-b-dir"
TITLE = "STS-B-DIR"
FAMILY = "sts"
MAIN_METRIC = "mse"
TABLE_METRICS = ("mse", "pearson")
IMAGES = False
#: the benchmark's recipe (sts-b-dir/train.py), epochs cut to 10 for the CPU
RECIPE = dict(batch_size=128, lr=1e-3, epochs=10, weight_decay=1e-5, grad_clip=5.0)

#: the label grid of Dist Loss (sts-b-dir)
LABEL_GRID = (0.0, 5.0, 0.1)


def files(root):
    return [root / "sts-b-dir" / f"{s}_new.tsv" for s in ("train", "dev", "test")]


def load(data_dir=None, **kwargs):
    from ..data.stsb import load_stsb
    return load_stsb(data_dir=data_dir, **kwargs)
