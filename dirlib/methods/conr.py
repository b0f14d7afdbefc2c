"""ConR (Keramati et al. 2024): a contrastive regulariser on two views, positives within a label
window, negatives pushed by their label distance."""
from .common import Part, Regularizer, TwoViews
from .options import Default

NAMES = {"conr": "ConR: contrastive regulariser on two views (w 1, e 0.01, tau 0.07, beta 4)."}
DEFAULTS = {
    "beta": Default(4.0, source="ConR agedb-dir/train.py, imdb-wiki-dir/README.md"),
    "w": Default(1.0, sts=0.2, source="ConR train.py (-w 1), in label units; STS-B ours: 0.2 score points"),
    "e": Default(0.01, source="ConR train.py (-e)"),
    "tau": Default(0.07, source="ConR agedb-dir/loss.py (overwrites t with 0.07)"),
}


def build(name, opts, cfg, data) -> Part:
    from ..losses.conr import conr_loss
    w = opts["w"] / data.target_scale     # label units -> the model-space targets the loss sees
    e, tau = opts["e"], opts["tau"]

    def conr(b):
        return conr_loss(b.z, b.y, b.pred, w=w, e=e, tau=tau, weights=b.weights)
    return Part(callbacks=[TwoViews(), Regularizer("conr", opts["beta"], conr)], train_views=2,
                settings={"w_label_units": opts["w"]})
