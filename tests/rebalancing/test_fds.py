"""FDS: EMA statistics by hand, bucket smoothing and calibration against loop references,
gradients, identity before start_smooth / in eval, bucket clamping, empty buckets."""
import math

import numpy as np
import pytest
import torch

from dirlib.data.base import Binning
from dirlib.rebalancing.fds import FDS, fds_kernel
from dirlib.rebalancing.weighting import lds_kernel


def test_fds_kernel_sums_to_one():
    k = fds_kernel("gaussian", 5, 2.0)
    assert k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, lds_kernel("gaussian", 5, 2.0) / lds_kernel("gaussian", 5, 2.0).sum())
    np.testing.assert_allclose(fds_kernel("triang", 3), [0.25, 0.5, 0.25])


def _pass(fds, feats, bins, epoch):
    """One end-of-epoch update, in the benchmark's order."""
    fds.update_last_epoch_stats(epoch)
    fds.update_running_stats(torch.tensor(feats, dtype=torch.float32)[:, None], torch.tensor(bins), epoch)


def test_ema_and_smoothing_by_hand():
    f = FDS(1, n_buckets=3, kernel="triang", ks=3, alias_quirk=False)  # kernel [.25, .5, .25]
    # epoch 0 (= start_update: no EMA): bucket 0 {1, 3}, bucket 1 {5}, bucket 2 empty
    _pass(f, [1.0, 3.0, 5.0], [0, 0, 1], 0)
    torch.testing.assert_close(f.running_mean[:, 0], torch.tensor([2.0, 5.0, 0.0]))
    torch.testing.assert_close(f.running_var[:, 0], torch.tensor([2.0, 0.0, 1.0]))  # n=1 -> 0; empty stays 1
    assert int(f.epoch) == 0  # update_last_epoch_stats(0) is a no-op
    # epoch 1: snapshot the epoch-0 stats, then EMA (m = 0.9) with bucket 0 {0, 2}, 1 {4, 6}, 2 {7}
    _pass(f, [0.0, 2.0, 4.0, 6.0, 7.0], [0, 0, 1, 1, 2], 1)
    torch.testing.assert_close(f.running_mean[:, 0], torch.tensor([0.1 * 1 + 0.9 * 2, 5.0, 0.1 * 7]))
    torch.testing.assert_close(f.running_var[:, 0], torch.tensor([2.0, 0.1 * 2, 0.9 * 1]))
    torch.testing.assert_close(f.num_samples_tracked, torch.tensor([4.0, 3.0, 1.0]))
    torch.testing.assert_close(f.running_mean_last_epoch[:, 0], torch.tensor([2.0, 5.0, 0.0]))
    # smoothing of the snapshot, reflect padding: row 0 = .25*x1 + .5*x0 + .25*x1, row 2 likewise
    torch.testing.assert_close(f.smoothed_mean_last_epoch[:, 0], torch.tensor([3.5, 3.0, 2.5]))
    torch.testing.assert_close(f.smoothed_var_last_epoch[:, 0], torch.tensor([1.0, 0.75, 0.5]))
    # a stale epoch is ignored; the snapshot only advances on epoch == self.epoch + 1
    before = f.running_mean.clone()
    f.update_running_stats(torch.ones(2, 1), torch.tensor([0, 1]), 0)
    torch.testing.assert_close(f.running_mean, before)
    f.update_last_epoch_stats(5)
    assert int(f.epoch) == 1
    # momentum=None: cumulative average, factor 1 - n / n_tracked
    g = FDS(1, n_buckets=3, kernel="triang", ks=3, momentum=None)
    _pass(g, [1.0, 3.0], [0, 0], 0)
    _pass(g, [0.0, 2.0], [0, 0], 1)
    assert g.running_mean[0, 0].item() == pytest.approx(0.5 * 1 + 0.5 * 2)


def _smooth_rows_loop(stats, k):
    K, h = len(stats), (len(k) - 1) // 2
    refl = lambda i: -i if i < 0 else (2 * (K - 1) - i if i >= K else i)  # reflect, no edge repeat
    return [[sum(k[j + h] * stats[refl(r + j)][c] for j in range(-h, h + 1)) for c in range(len(stats[0]))]
            for r in range(K)]


def _calibrate_loop(z, rows, m1, v1, m2, v2, n1, cmin, cmax, empty_identity=True):
    """calibrate_mean_var per sample and dimension, written out."""
    out = [list(r) for r in z]
    for i, b in enumerate(rows):
        if sum(v1[b]) < 1e-10 or (empty_identity and n1[b] == 0):
            continue
        for c in range(len(out[i])):
            if v1[b][c] == 0:
                continue
            f = min(max(v2[b][c] / v1[b][c], cmin), cmax)
            out[i][c] = (z[i][c] - m1[b][c]) * math.sqrt(f) + m2[b][c]
    return out


@pytest.mark.parametrize("alias", [False, True])
def test_smoothing_and_calibration_match_loops(alias):
    g = torch.Generator().manual_seed(0)
    K, d = 6, 3
    f = FDS(d, n_buckets=K, ks=5, sigma=2.0, clip=(0.5, 2.0), alias_quirk=alias)
    f.train()
    feats = torch.randn(40, d, generator=g) * 2
    bins = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3] * 4)  # bucket 4 and 5 empty
    feats[bins == 1, 2] = 7.0  # a zero-variance dimension
    for ep in range(3):
        f.update_last_epoch_stats(ep)
        f.update_running_stats(feats + ep, bins, ep)
    k = fds_kernel("gaussian", 5, 2.0)
    ref_sm = _smooth_rows_loop(f.running_mean_last_epoch.tolist(), k)
    np.testing.assert_allclose(f.smoothed_mean_last_epoch.numpy(), ref_sm, rtol=1e-5, atol=1e-6)
    ref_sv = _smooth_rows_loop(f.running_var_last_epoch.tolist(), k)
    np.testing.assert_allclose(f.smoothed_var_last_epoch.numpy(), ref_sv, rtol=1e-5, atol=1e-6)

    z = torch.randn(9, d, generator=g, dtype=torch.float64)
    zb = torch.tensor([0, 1, 2, 3, 4, 5, 1, 3, 0])
    out = f.smooth(z, zb, epoch=3)
    if alias:  # the authors' aliasing: mu_b, var_b are the live running stats
        m1, v1, n1 = f.running_mean, f.running_var, f.num_samples_tracked
    else:
        m1, v1, n1 = f.running_mean_last_epoch, f.running_var_last_epoch, f.num_samples_last_epoch
    ref = _calibrate_loop(z.tolist(), zb.tolist(), m1.double().tolist(), v1.double().tolist(),
                          f.smoothed_mean_last_epoch.double().tolist(),
                          f.smoothed_var_last_epoch.double().tolist(), n1.tolist(), 0.5, 2.0)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(out[4], z[4]) and torch.equal(out[5], z[5])  # empty buckets: identity
    assert out[1, 2] == z[1, 2] and out[1, 0] != z[1, 0]  # zero-variance dim left as is
    # the two modes really differ after the second snapshot
    other = FDS(d, n_buckets=K, ks=5, sigma=2.0, clip=(0.5, 2.0), alias_quirk=not alias)
    other.load_state_dict(f.state_dict())
    other.train()
    assert not torch.allclose(other.smooth(z, zb, 3), out)


def test_gradients_flow_without_inplace():
    f = FDS(2, n_buckets=4, kernel="triang", ks=3, alias_quirk=False)
    f.train()
    f.running_mean_last_epoch.copy_(torch.tensor([[0.0, 1.0], [2.0, 3.0], [0.0, 0.0], [1.0, 1.0]]))
    f.running_var_last_epoch.copy_(torch.tensor([[1.0, 4.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]))
    f.smoothed_mean_last_epoch.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]))
    f.smoothed_var_last_epoch.copy_(torch.tensor([[2.0, 100.0], [1.0, 0.01], [1.0, 1.0], [1.0, 1.0]]))
    f.num_samples_last_epoch.copy_(torch.tensor([5.0, 5.0, 0.0, 5.0]))
    base = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    z = base * 1.0  # non-leaf: an in-place write on it would break backward
    z_before = z.detach().clone()
    out = f.smooth(z, torch.tensor([0, 1, 2, 3]), epoch=1)
    c = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], dtype=torch.float64)
    (out * c).sum().backward()
    expect = torch.tensor([[math.sqrt(2.0), math.sqrt(10.0)],  # 2/1; 100/4 = 25 clamped to 10
                           [1.0, math.sqrt(0.1)],             # var_b 0 -> identity; 0.01/2 clamped to 0.1
                           [1.0, 1.0],                        # empty bucket -> identity
                           [1.0, 1.0]], dtype=torch.float64)  # sum(var_b) = 0 -> identity
    torch.testing.assert_close(base.grad, c * expect)
    assert torch.equal(z.detach(), z_before)


def test_identity_before_start_smooth_and_in_eval():
    f = FDS(2, n_buckets=4, kernel="triang", ks=3, start_smooth=2)
    f.train()
    feats, bins = torch.randn(20, 2), torch.arange(20) % 4
    for ep in range(3):
        f.update_last_epoch_stats(ep)
        f.update_running_stats(feats * (ep + 1), bins, ep)
    z, zb = torch.randn(4, 2), torch.arange(4)
    assert f.smooth(z, zb, epoch=1) is z
    assert not torch.allclose(f.smooth(z, zb, epoch=2), z)
    f.eval()
    assert f.smooth(z, zb, epoch=5) is z
    # the initial 0/1 statistics calibrate to the identity (the benchmark's first smoothing epoch)
    fresh = FDS(2, n_buckets=4, kernel="triang", ks=3, empty="fill").train()
    torch.testing.assert_close(fresh.smooth(z, zb, epoch=1), z)


def test_bucket_clamping_agedb_layout():
    b = Binning.integer(0, 99)  # AgeDB code: bucket_num=100, bucket_start=3
    f = FDS(1, binning=b, bucket_start=3, ks=5, sigma=2.0, alias_quirk=False)
    assert f.n_rows == 97
    ages = torch.tensor([1.0, 3.0, 50.0, 101.0])
    bins = f.bins_of(ages)
    torch.testing.assert_close(bins, torch.tensor([1, 3, 50, 99]))
    f.update_running_stats(torch.tensor([[10.0], [20.0], [30.0], [40.0]]), bins, 0)
    torch.testing.assert_close(f.num_samples_tracked[[0, 47, 96]], torch.tensor([2.0, 1.0, 1.0]))
    assert f.running_mean[0, 0].item() == pytest.approx(15.0)  # ages 1 and 3 share bucket 3
    with pytest.raises(TypeError):
        f.update_running_stats(torch.ones(2, 1), torch.tensor([3.0, 4.0]), 0)
    with pytest.raises(ValueError):
        f.update_running_stats(torch.ones(2, 1), torch.tensor([3, 100]), 0)
    with pytest.raises(ValueError):
        f.smooth(torch.ones(3, 1), torch.tensor([3, 4]), 1)
    with pytest.raises(ValueError):
        FDS(1, n_buckets=3, ks=9)  # too few buckets for reflect padding


def test_empty_bucket_fill_mode():
    # sts-b-dir/fds.py: absent buckets filled in order from their neighbours
    f = FDS(1, n_buckets=5, kernel="triang", ks=3, empty="fill")
    f.update_running_stats(torch.tensor([[2.0], [4.0], [10.0]]), torch.tensor([1, 1, 3]), 0)
    # bucket 0 <- bucket 1; bucket 2 <- mean(1, 3); bucket 4 <- bucket 3
    torch.testing.assert_close(f.running_mean[:, 0], torch.tensor([3.0, 3.0, 6.5, 10.0, 10.0]))
    torch.testing.assert_close(f.running_var[:, 0], torch.tensor([2.0, 2.0, 1.0, 0.0, 0.0]))
    # identity mode leaves them at the initial values
    g = FDS(1, n_buckets=5, kernel="triang", ks=3)
    g.update_running_stats(torch.tensor([[2.0], [4.0], [10.0]]), torch.tensor([1, 1, 3]), 0)
    torch.testing.assert_close(g.running_mean[:, 0], torch.tensor([0.0, 3.0, 0.0, 10.0, 0.0]))


# --------------------------------------------------------------------------------------------
# FDS and VIR's PRM share one running-statistics base: the same checks, buckets and buffers
# --------------------------------------------------------------------------------------------
def test_prm_checks_its_binning_as_fds_does():
    from dirlib.losses.vir import PRM
    b = Binning.integer(0, 11)
    for cls in (FDS, PRM):
        with pytest.raises(ValueError, match=r"n_buckets=10 but the binning has 12 bins"):
            cls(4, n_buckets=10, binning=b)
        with pytest.raises(TypeError, match="integer bin indices"):
            cls(4, binning=b).rows_of(torch.tensor([0.5]), 1, "cpu")


def test_fds_and_prm_bin_labels_alike_and_reset_alike():
    # (both now return the bins on the labels' device; that difference shows only on a GPU)
    from dirlib.losses.vir import PRM
    b = Binning.integer(0, 11)
    labels = torch.tensor([0.0, 3.0, 11.0, 20.0])
    fds, prm = FDS(4, binning=b), PRM(4, binning=b)
    for m in (fds, prm):
        got = m.bins_of(labels)
        assert got.dtype == torch.int64
        assert got.tolist() == b.index(labels.numpy()).tolist()
        assert m.bins_of(labels.numpy()).device == torch.device("cpu")
    # after a pass and an epoch, reset restores each one's own initial statistics
    z, bins = torch.randn(12, 4), torch.arange(12)
    fds.update_running_stats(z, bins, 0)
    prm.update_running_stats(z, torch.rand(12, 4), bins, 0)
    for m in (fds, prm):
        m.update_last_epoch_stats(1)
        m.reset()
        assert int(m.epoch) == 0 and m.num_samples_tracked.sum() == 0
    assert fds.running_mean.eq(0).all() and fds.smoothed_var_last_epoch.eq(1).all()
    assert prm.running_mean[:, :4].eq(0).all() and prm.running_mean[:, 4:].eq(1).all()
