"""RankSim (Gong et al. 2022): match the ranking of feature similarities to the ranking of
label similarities in each batch."""
import torch

from ..losses.ranksim import ranksim_loss
from ..train import Callback
from .common import GeneratorState, Part
from .options import Default

NAMES = {"ranksim": "RankSim: rank-matching of feature similarities to label similarities "
                    "(gamma 100 ages / 3e-4 STS-B, lambda 2)."}
DEFAULTS = {
    "gamma": Default(100.0, sts=3e-4, source="RankSim agedb-dir/, imdb-wiki-dir/, sts-b-dir/README.md "
                                             "(--regularization_weight; code default 0)"),
    "lam": Default(2.0, source="RankSim READMEs (train.py defaults --interpolation_lambda 1.0)"),
}

#: the trials of ``dirlib.tools.tune``: RankSim's weight around both families' defaults
SEARCH_SPACE = {"gamma": [3e-4, 1e-2, 1.0, 100.0]}


class RankSimCallback(GeneratorState, Callback):
    """``gamma * RankSim(z, y)``; the sampling of one sample per label uses ``self.gen``."""

    name = "ranksim"

    def __init__(self, gamma, lam, seed):
        super().__init__()
        self.gamma, self.lam = gamma, lam
        self.gen = torch.Generator().manual_seed(int(seed))

    def extra_loss(self, st, b):
        val = ranksim_loss(b.z, b.y, lam=self.lam, generator=self.gen)
        return self.gamma * val, {"ranksim": val.detach()}


def build(name, opts, cfg, data) -> Part:
    return Part(callbacks=[RankSimCallback(opts["gamma"], opts["lam"], cfg.seed)])
