"""Models: an encoder producing the feature ``z`` plus a linear head.

``pred, z = model(x)``: ``z`` is the penultimate, pooled feature (the one whose per-label prototype
norms the paper studies; ResNet: the global-average-pooled output, non-negative after ReLU; BiLSTM:
the pair feature ``[u, v, |u-v|, u*v]``; MLP: the last hidden layer). ``model(x,
feature_transform=f)`` feeds ``f(z)`` to the head (FDS calibration) but still returns the raw ``z``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn


class Regressor(nn.Module):
    def __init__(self, encoder: nn.Module, feat_dim: int):
        super().__init__()
        self.encoder = encoder
        self.feat_dim = feat_dim
        self.head = nn.Linear(feat_dim, 1)

    def forward(self, x, feature_transform: Optional[Callable] = None):
        z = self.encoder(x)
        h = feature_transform(z) if feature_transform is not None else z
        return self.head(h).squeeze(-1), z


# ---------------------------------------------------------------------------------- ResNet
class ResNetEncoder(nn.Module):
    """torchvision ResNet-18/50 built from scratch (``weights=None``: nothing is downloaded).

    ``stem="imagenet"`` keeps the 7x7 stride-2 conv and max-pool (a 64 px input leaves a 2x2 map
    before pooling; ~30x cheaper on CPU than the CIFAR stem); ``stem="cifar"`` (3x3 stride-1 conv,
    no max-pool) is the small-input variant that keeps more resolution at 32-64 px.
    """

    def __init__(self, arch: str = "resnet18", stem: str = "imagenet"):
        super().__init__()
        import torchvision
        if arch not in ("resnet18", "resnet34", "resnet50"):
            raise ValueError(f"unknown ResNet arch {arch!r}")
        net = getattr(torchvision.models, arch)(weights=None)
        if stem == "cifar":
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif stem != "imagenet":
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.feat_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x):
        return self.net(x)


# ---------------------------------------------------------------------------------- BiLSTM
class BiLSTMPairEncoder(nn.Module):
    """The STS-B-DIR encoder (``sts-b-dir/models.py``): frozen word embeddings, a 2-layer BiLSTM
    (hidden ``hidden`` per direction), max-pool over time (padding masked), and the pair feature
    ``[u, v, |u - v|, u * v]`` of dimension ``8 * hidden``. Input: token ids ``(B, 2, T)``, 0 = pad.
    The benchmark uses hidden 1500 with GloVe 840B-300d; our CPU default is smaller (see
    ``docs``)."""

    def __init__(self, embedding: torch.Tensor, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.2, train_embedding: bool = False):
        super().__init__()
        emb = torch.as_tensor(embedding, dtype=torch.float32)
        self.embed = nn.Embedding.from_pretrained(emb, freeze=not train_embedding, padding_idx=0)
        self.lstm = nn.LSTM(emb.shape[1], hidden, num_layers=layers, bidirectional=True,
                            batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.feat_dim = 8 * hidden

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens != 0
        lengths = mask.sum(1).clamp(min=1)
        e = self.dropout(self.embed(tokens))
        packed = nn.utils.rnn.pack_padded_sequence(e, lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                  total_length=tokens.shape[1])
        valid = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
        out = out.masked_fill(~valid[:, :, None], float("-inf"))
        return out.max(dim=1).values

    def forward(self, x):
        b = x.shape[0]
        both = self.encode(x.reshape(b * 2, x.shape[-1])).reshape(b, 2, -1)
        u, v = both[:, 0], both[:, 1]
        return torch.cat([u, v, (u - v).abs(), u * v], dim=1)


# ---------------------------------------------------------------------------------- MLP
class MLPEncoder(nn.Module):
    def __init__(self, in_dim: int, hidden=(128, 64), dropout: float = 0.0):
        super().__init__()
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = h
        self.net = nn.Sequential(*layers)
        self.feat_dim = d

    def forward(self, x):
        return self.net(x)


MODELS = ("resnet18", "resnet50", "bilstm", "mlp")
#: user encoders by name (:func:`register_encoder`): name -> (factory, feature dimension)
ENCODERS: dict = {}


def register_encoder(name: str, factory: Callable[[], nn.Module], feat_dim: int) -> str:
    """Make ``name`` a model :func:`build_model` knows: each build calls ``factory()`` for a fresh
    encoder (the same initial weights each time when the factory copies one module) that maps a
    batch to ``(B, feat_dim)`` features; dirlib adds the linear head. Returns ``name``."""
    if name in MODELS:
        raise ValueError(f"register_encoder: {name!r} is a built-in model")
    if not (isinstance(feat_dim, int) and feat_dim > 0):
        raise ValueError(f"register_encoder: feat_dim must be a positive int, got {feat_dim!r}")
    ENCODERS[name] = (factory, feat_dim)
    return name


def build_model(name: str, **kwargs) -> Regressor:
    """Build a :class:`Regressor`. ``name`` in :data:`MODELS` or registered with
    :func:`register_encoder`; kwargs go to a built-in encoder (``img_size`` is accepted and ignored
    by ResNets, which pool globally)."""
    kwargs = dict(kwargs)
    kwargs.pop("img_size", None)
    if name in ENCODERS:
        factory, feat_dim = ENCODERS[name]
        return Regressor(factory(), feat_dim)
    if name in ("resnet18", "resnet34", "resnet50"):
        enc = ResNetEncoder(name, stem=kwargs.pop("stem", "imagenet"))
    elif name == "bilstm":
        enc = BiLSTMPairEncoder(**kwargs)
    elif name == "mlp":
        enc = MLPEncoder(**kwargs)
    else:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS + tuple(ENCODERS))}"
                         + (" (custom data without a default encoder: pass encoder= to dirlib.run)"
                            if name == "none" else ""))
    return Regressor(enc, enc.feat_dim)
