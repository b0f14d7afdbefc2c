"""The functional forms of the losses in :mod:`dirlib.losses`, with predictions or features first.

>>> import torch
>>> from dirlib.losses import functional as LF
>>> float(LF.focal_l1(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))) > 0
True
"""
from .bmse import bmc_loss, bni_loss, gai_loss  # noqa: F401  (pred, target, noise_var, ...)
from .conr import conr_loss  # noqa: F401  (features, labels, pred, ...)
from .distloss import dist_loss, soft_sort  # noqa: F401  (pred, target, pseudo, ...)
from .focal import focal_l1, focal_mse  # noqa: F401  (pred, target, ...)
from .frobenius import norm_alignment_loss, ordinal_kl, prototype_ordinal_entropy  # noqa: F401  (features, ...)
from .oe import ordinal_entropy, ordinal_entropy_terms  # noqa: F401  (features, labels, ...)
from .ranksim import ranksim_loss  # noqa: F401  (features, labels, ...)
from .rnc import rnc_loss  # noqa: F401  (features, labels, ...)

__all__ = ["bmc_loss", "bni_loss", "gai_loss", "conr_loss", "dist_loss", "soft_sort", "focal_l1",
           "focal_mse", "norm_alignment_loss", "ordinal_kl", "prototype_ordinal_entropy",
           "ordinal_entropy", "ordinal_entropy_terms", "ranksim_loss", "rnc_loss"]
