"""The public loss API (``dirlib.losses``) beyond what every loss shares (that is
``test_every_loss.py``): where the Frobenius regulariser takes its bins from, Focal-R's MSE form,
Dist Loss's two parts and phase 3 with a fitted norm net. The docstring examples run as doctests."""
import pytest
import torch

import dirlib.losses as L
from dirlib.losses import functional as LF


def _batch(b=12, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, d, generator=g, requires_grad=True)
    y = torch.tensor([20.5, 20.5, 31.0, 31.0, 44.2, 44.2, 58.0, 58.0, 63.3, 70.1, 70.1, 85.0][:b])
    return z, y


def test_frobenius_regularizer_bins_from_the_module_not_the_caller():
    from dirlib.data import Binning
    z, y = _batch()
    by_width = L.FrobeniusRegularizer(bin_width=1.0)
    loss = by_width(z, y)
    assert loss.shape == () and by_width.parts["n_labels"] == 7      # 7 distinct labels, width 1
    coarse = L.FrobeniusRegularizer(bin_width=30.0)
    coarse(z, y)
    assert coarse.parts["n_labels"] == 3                               # [0,30) [30,60) [60,90)
    binning = Binning.integer(0, 120)
    by_binning = L.FrobeniusRegularizer(binning=binning)
    bins = torch.as_tensor(binning.index(y.numpy()))
    assert torch.allclose(by_binning(z, y), L.FrobeniusRegularizer()(z, y, bins=bins))
    with pytest.raises(ValueError, match="bin_width or binning"):
        L.FrobeniusRegularizer(bin_width=1.0, binning=binning)
    with pytest.raises(ValueError, match="bin_width must be > 0"):
        L.FrobeniusRegularizer(bin_width=0)


def test_prediction_losses_and_norm_alignment():
    pred, target = torch.tensor([20.0, 30.0, 52.0], requires_grad=True), torch.tensor([21.0, 35.0, 50.0])
    assert torch.allclose(L.FocalR(beta=0.2)(pred, target), LF.focal_l1(pred, target, 0.2))
    assert torch.allclose(L.FocalR(base="mse", beta=20.0)(pred, target), LF.focal_mse(pred, target, 20.0))
    bmse = L.BalancedMSE(init_noise_sigma=2.0)
    assert torch.allclose(bmse(pred, target), LF.bmc_loss(pred, target, torch.tensor(4.0)))
    dl = L.DistLoss([20, 22, 25, 25, 30, 35, 50, 60], step=1.0)
    total = dl(pred, target)
    assert torch.allclose(total, dl.parts["plain"] + dl.parts["dist"])
    total.backward()
    assert torch.isfinite(pred.grad).all()
    from dirlib.losses.frobenius import fit_norm_net
    import numpy as np
    labels = np.arange(0, 50, dtype=float)
    net, _ = fit_norm_net(labels, 1.0 + 0.05 * labels, np.ones(50, dtype=bool), epochs=300)
    z = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([5.0, 10.0, 20.0, 40.0])
    got = L.NormAlignment(net)(z, y)
    want = LF.norm_alignment_loss(z, net.predict(y))
    assert torch.allclose(got, want) and got.shape == ()
