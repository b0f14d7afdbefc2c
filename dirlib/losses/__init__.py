"""The DIR losses and regularisers, one ``nn.Module`` per method, hyper-parameters bound at
construction.

Feature regularisers are called as ``(features, labels)``, prediction losses as ``(pred, target)``;
extra inputs are keywords (ConR's ``pred=``). Labels are float; where a method needs bins they come
from a ``bin_width`` or a :class:`dirlib.data.Binning` given at construction. ``forward`` returns a
scalar tensor, and the named parts of the last call are in the module's ``parts`` attribute. The
functional forms are in :mod:`dirlib.losses.functional`.

>>> import torch
>>> from dirlib.losses import FrobeniusRegularizer, RankSim
>>> z, y = torch.randn(16, 8), torch.rand(16) * 50
>>> FrobeniusRegularizer(bin_width=1.0)(z, y).shape, RankSim()(z, y).shape
(torch.Size([]), torch.Size([]))
"""
from .bmse import BalancedMSE
from .conr import ConR
from .distloss import DistLoss
from .focal import FocalR
from .frobenius import (FrobeniusRegularizer, NormAlignment, NormNet, dataset_prototype_norms,
                        fit_norm_net)
from .oe import OrdinalEntropy
from .ranksim import RankSim
from .rnc import RnCLoss

__all__ = ["BalancedMSE", "ConR", "DistLoss", "FocalR", "FrobeniusRegularizer", "NormAlignment",
           "OrdinalEntropy", "RankSim", "RnCLoss",
           # phase 2 of the paper's method, for your own loop
           "NormNet", "dataset_prototype_norms", "fit_norm_net"]
