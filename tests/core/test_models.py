import pytest
import torch

from dirlib.models import build_model


@pytest.mark.parametrize("name,x,feat", [
    ("resnet18", torch.randn(2, 3, 64, 64), 512),
    ("resnet50", torch.randn(2, 3, 64, 64), 2048),
    ("mlp", torch.randn(5, 7), 64),
])
def test_regressor_returns_pred_and_feature(name, x, feat):
    kw = {"in_dim": 7} if name == "mlp" else {}
    m = build_model(name, **kw)
    pred, z = m(x)
    assert pred.shape == (x.shape[0],) and z.shape == (x.shape[0], feat)
    assert m.feat_dim == feat


def test_resnet_cifar_stem_and_pooled_feature_nonnegative():
    m = build_model("resnet18", stem="cifar")
    pred, z = m(torch.randn(2, 3, 32, 32))
    assert z.shape == (2, 512) and (z >= 0).all()   # post-ReLU average pool


def test_bilstm_pair_feature_and_padding_invariance():
    torch.manual_seed(0)
    emb = torch.randn(20, 6)
    emb[0] = 0
    m = build_model("bilstm", embedding=emb, hidden=5, dropout=0.0).eval()
    x = torch.randint(2, 20, (3, 2, 8))
    x[:, :, 5:] = 0   # padding
    pred, z = m(x)
    assert z.shape == (3, 40) and pred.shape == (3,)
    u, v = z[:, :10], z[:, 10:20]
    torch.testing.assert_close(z[:, 20:30], (u - v).abs())
    torch.testing.assert_close(z[:, 30:], u * v)
    # more padding must not change the feature (padding is masked in the max-pool)
    x2 = torch.cat([x, torch.zeros(3, 2, 4, dtype=torch.long)], dim=2)
    torch.testing.assert_close(m(x2)[1], z)
    assert not m.encoder.embed.weight.requires_grad   # frozen embeddings


def test_feature_transform_reaches_head_only():
    m = build_model("mlp", in_dim=3)
    x = torch.randn(4, 3)
    p0, z0 = m(x)
    p1, z1 = m(x, feature_transform=lambda z: z * 0)
    torch.testing.assert_close(z0, z1)
    torch.testing.assert_close(p1, m.head.bias.expand(4))


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="resnet18"):
        build_model("vgg")
