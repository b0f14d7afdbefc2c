"""FDS (Yang et al. 2021): feature distribution smoothing. Per-bucket feature statistics, kept
as running averages over epochs and smoothed over neighbouring buckets, re-calibrate ``z``
before the head during training (off at test time)."""
import torch

from ..train import Callback
from .common import Part, fds_buckets, feat_dim
from .options import Default, family

NAMES = {"fds": "Feature distribution smoothing (per-bucket EMA stats, gaussian ks 5 sigma 2, "
                "momentum 0.9, calibration from epoch 2, off at test time)."}
DEFAULTS = {
    "ks": Default(5, source="Yang READMEs (argparse default AgeDB --fds_ks 9)"),
    "sigma": Default(2.0, source="Yang READMEs (argparse default AgeDB --fds_sigma 1)"),
    "momentum": Default(0.9, source="Yang train.py (--fds_mmt)"),
    "start_smooth": Default(1, source="Yang train.py (--start_smooth)"),
}


class FDSCallback(Callback):
    """Calibrate ``z`` before the head in training (from ``start_smooth``); after each epoch a
    no-grad pass over the (augmented) training loader in train mode collects per-bucket
    statistics, as ``agedb-dir/train.py`` does."""

    name = "fds"

    def __init__(self, fds, data):
        super().__init__()
        self.fds = fds
        # the FDS bucket of every training sample, once (not a numpy binning per step)
        self.register_buffer("sample_bins", fds.bins_of(torch.as_tensor(data.train_labels,
                                                                         dtype=torch.float64)),
                             persistent=False)

    def feature_transform(self, st, b):
        if not st.model.training:
            return None
        bins, ep = self.sample_bins[b.idx.to(self.sample_bins.device)], st.epoch
        return lambda z: self.fds.smooth(z, bins, ep)

    @torch.no_grad()
    def on_epoch_end(self, st):
        self.fds.update_last_epoch_stats(st.epoch)
        feats, bins = [], []
        for i, (x, y, idx) in enumerate(st.train_loader):
            if st.cfg.max_batches is not None and i >= st.cfg.max_batches:
                break
            _, z = st.model(x.to(st.device))
            feats.append(z.float())
            bins.append(self.sample_bins[idx.to(self.sample_bins.device)])
        self.fds.update_running_stats(torch.cat(feats), torch.cat(bins), st.epoch)


def build(name, opts, cfg, data) -> Part:
    from ..rebalancing.fds import FDS
    common = {k: opts[k] for k in DEFAULTS}
    d = feat_dim(cfg, data)
    if family(data) == "sts":
        fds = FDS(d, binning=data.binning, clip=(0.5, 2.0), empty="fill", **common)
    else:
        fds = FDS(d, **fds_buckets(data), **common)
    return Part(callbacks=[FDSCallback(fds, data)])


