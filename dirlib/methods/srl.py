"""SRL (Dong et al. 2025): features projected to ``dim``, label centroids completed by EMA
surrogates for labels absent from the batch; contrastive (``w1``), enveloping (``w2``) and
homogeneity (``w3``) terms."""
import torch
import torch.nn as nn

from ..losses.srl import SurrogateBank, srl_loss, uniform_points
from ..train import Callback
from .common import Part, feat_dim, plain_x, seeded
from .options import Default

NAMES = {"srl": "SRL (Dong et al. 2025): projector features, label centroids completed by EMA "
                "surrogates; contrastive (w1 10), enveloping (w2 100) and homogeneity (w3 1e-2) terms, "
                "tau 0.3 (STS-B: 1e-4 / 1e-2 / 1e-4, tau 0.1)."}
_SRC = "SRL@1ac666e agedb-dir/train.py (argparse); sts-b-dir/README.md"
DEFAULTS = {
    "w1": Default(10.0, sts=1e-4, source=_SRC), "w2": Default(100.0, sts=1e-2, source=_SRC),
    "w3": Default(1e-2, sts=1e-4, source=_SRC), "temperature": Default(0.3, sts=0.1, source=_SRC),
    "dim": Default(128, source="SRL agedb-dir/resnet.py, sts-b-dir/models.py"),
    "n_points": Default(2000, sts=1000, source="SRL agedb-dir/train.py --n, sts-b-dir/trainer.py"),
    "momentum": Default(0.9, source="SRL train.py (--fds_mmt: FDS as the surrogate store)"),
    "delay_quirk": Default(True, source="SRL train.py (zero surrogates in epochs 0-1)"),
    "projector": Default("linear", sts="mlp", source="SRL agedb-dir/resnet.py (Linear), sts-b-dir/models.py (MLP)"),
}


class SRLCallback(Callback):
    name = "srl"

    def __init__(self, projector, bank, points, s):
        super().__init__()
        self.projector, self.bank, self.s = projector, bank, s
        self.register_buffer("points", points)

    def extra_loss(self, st, b):
        f = self.projector(b.z)
        total, parts = srl_loss(f, b.bins, self.bank.surrogate().to(f), self.points, self.s["temperature"],
                                self.s["w1"], self.s["w2"], self.s["w3"])
        return total, {f"srl_{k}": v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def on_epoch_end(self, st):
        feats, bins = [], []
        for i, (x, y, idx) in enumerate(st.train_loader):
            if st.cfg.max_batches is not None and i >= st.cfg.max_batches:
                break
            _, z = st.model(plain_x(x).to(st.device))
            feats.append(self.projector(z).float())
            bins.append(st.train_bins[idx].to(st.device))
        self.bank.update(torch.cat(feats), torch.cat(bins), st.epoch)


def build(name, opts, cfg, data) -> Part:
    s = {k: opts[k] for k in DEFAULTS}
    opts.one_of("projector", ("linear", "mlp"))
    d = feat_dim(cfg, data)
    n_rows = int(data.train_bins.max()) + 1
    if n_rows < 3:
        raise ValueError("srl needs at least 3 label bins")
    with seeded(cfg.seed * 7919 + 53):
        if s["projector"] == "linear":
            proj = nn.Linear(d, s["dim"])
        else:
            proj = nn.Sequential(nn.Linear(d, s["dim"]), nn.ReLU(), nn.Linear(s["dim"], s["dim"]))
        points = uniform_points(s["n_points"], s["dim"], torch.Generator().manual_seed(int(cfg.seed)))
    bank = SurrogateBank(n_rows, s["dim"], momentum=s["momentum"], delay_quirk=s["delay_quirk"])
    return Part(callbacks=[SRLCallback(proj, bank, points, s)], settings={"label_rows": n_rows})
