"""The small base every loss module with named parts shares.

A loss module returns one scalar; the named pieces of its last call (detached) are in ``parts``,
which the trainer logs. Its ``repr`` lists the settings named in ``repr_fields``.

>>> class Half(LossWithParts):
...     repr_fields = ("scale",)
...     def __init__(self, scale=0.5):
...         super().__init__()
...         self.scale = scale
...     def forward(self, x):
...         return self.record(x.sum() * self.scale, half=x.sum() * self.scale)
>>> import torch
>>> m = Half()
>>> float(m(torch.ones(4))), {k: float(v) for k, v in m.parts.items()}, m
(2.0, {'half': 2.0}, Half(scale=0.5))
"""
from __future__ import annotations

import torch
import torch.nn as nn


class LossWithParts(nn.Module):
    """``parts``: the named, detached pieces of the last call (empty before one); ``repr``: the
    attributes in ``repr_fields``, each as ``name=value!r``."""

    #: the attributes that the ``repr`` shows, in order
    repr_fields: tuple = ()

    def __init__(self):
        super().__init__()
        self.parts = {}

    def record(self, loss: torch.Tensor, **parts) -> torch.Tensor:
        """Keep ``parts`` (tensors detached) as this call's, and return ``loss``."""
        self.parts = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in parts.items()}
        return loss

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self.repr_fields)
