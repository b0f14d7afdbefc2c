"""Ordinal Entropy (Zhang et al., ICLR 2023): the one core used by the ``oe`` baseline and by the
paper's OE term (``dirlib/losses/frobenius.py``).

Source: ``needylove/OrdinalEntropy/AgeEstimation/OrdinalEntropy.py::ordinalentropy``, the version
the README points to for age estimation. Its two published forms differ in the tightness term:

* ``tightness_form="75fc9d5"`` (**default**; the repository's HEAD, 2023-09-15, which the paper's OE
  term follows): tightness = mean over samples of ``||normalize(z_i) - p_{y_i}||_2`` (the distance);
* ``tightness_form="4a4dd5f"`` (the first upload): the **squared** distance, ``.pow(2).sum(1)`` with
  no square root. dirlib's OE rows before this option existed were trained with this form.

Both forms are tested against a slow reference (``tests/losses/test_oe.py``).

Batch-wise, per group ``u`` (a unique label value, or a bin of the paper's term):

* prototype ``c_u`` = mean feature of the group (gradients flow through it), ``p_u = normalize(c_u)``;
* diversity ``L_d = mean_{u<v} w_uv * ||p_u - p_v||_2`` with label weights
  ``w_uv = (|y_u - y_v| - min) / max`` over the upper triangle (it divides by ``max``, not
  ``max - min``); distances are ``sqrt(clamp(d^2, 1e-12))`` as the code's ``euclidean_dist``;
* tightness over the samples whose value is not exactly 0 (the code masks ``> 0``), in the form
  above.

Result: ``lambda_t * L_t - lambda_d * L_d``. The public function applies no weight
(``lambda_d = lambda_t = 1``) and the README adds it to the task loss with weight 1. The synthetic
``main.py`` uses ``Lambda_d = 1e-3`` on diversity only. OE normalises features and prototypes, so it
is blind to feature norms.

Edge cases the code leaves undefined (it would crash or return NaN), defined here:

* fewer than 2 groups: no pair, diversity = 0;
* every tightness value exactly 0 (e.g. each label occurs once): tightness = 0.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .parts import LossWithParts


#: the published forms of the tightness term, by commit of needylove/OrdinalEntropy
TIGHTNESS_FORMS = {"75fc9d5": "distance (HEAD)", "4a4dd5f": "squared distance (first upload)"}
_EPS = 1e-12


def _check_form(tightness_form: str) -> None:
    if tightness_form not in TIGHTNESS_FORMS:
        raise ValueError(f"tightness_form must be one of {', '.join(TIGHTNESS_FORMS)} (commits of "
                         f"needylove/OrdinalEntropy), got {tightness_form!r}")


def _tightness(f: torch.Tensor, p: torch.Tensor, inv: torch.Tensor, tightness_form: str) -> torch.Tensor:
    """Mean over the samples with a non-zero value of ``||f_i - p_{inv_i}||`` (75fc9d5) or its square
    (4a4dd5f); 0 when every value is 0."""
    t = ((f - p[inv]) ** 2).sum(1)
    mask = t > 0
    if tightness_form == "75fc9d5":
        # sqrt only where t > 0 (the gradient of sqrt at 0 is infinite); masked entries add 0
        t = torch.where(mask, t.clamp_min(_EPS).sqrt(), torch.zeros_like(t))
    else:
        t = torch.where(mask, t, torch.zeros_like(t))
    return t.sum() / mask.sum().clamp_min(1).to(t.dtype)


def oe_core(zf: torch.Tensor, inv: torch.Tensor, protos: torch.Tensor, proto_y: torch.Tensor, *,
            normalize: bool = True, tightness: bool = True, tightness_form: str = "75fc9d5",
            squared: bool = False, weights: str = "minmax") -> Tuple[torch.Tensor, torch.Tensor]:
    """``(diversity, tightness)`` of OE for features ``zf`` (B, d) grouped by ``inv`` (B,) into
    ``protos`` (m, d) whose labels are ``proto_y`` (m,). ``squared``: squared prototype distances in
    the diversity (eq. 4 as printed); ``weights="l1"``: ``|y_u - y_v|`` (eq. 4) instead of the
    code's min-max weights; ``tightness=False``: no tightness term (0). Fewer than 2 groups: the
    diversity is 0."""
    _check_form(tightness_form)
    if weights not in ("minmax", "l1"):
        raise ValueError(f"weights must be 'minmax' or 'l1', got {weights!r}")
    m = protos.shape[0]
    p = F.normalize(protos, dim=1) if normalize else protos
    if m >= 2:
        iu = torch.triu_indices(m, m, offset=1, device=p.device)
        diff = p[iu[0]] - p[iu[1]]
        sq = (diff * diff).sum(1)
        dist = sq if squared else sq.clamp_min(_EPS).sqrt()
        w = (proto_y[iu[0]] - proto_y[iu[1]]).abs().to(dist.dtype)
        if weights == "minmax":
            w = (w - w.min()) / w.max().clamp_min(_EPS)
        diversity = (w * dist).mean()
    else:
        diversity = zf.sum() * 0.0
    if not tightness:
        return diversity, diversity * 0.0
    return diversity, _tightness(F.normalize(zf, dim=1) if normalize else zf, p, inv, tightness_form)


def ordinal_entropy_terms(z: torch.Tensor, y: torch.Tensor, tightness_form: str = "75fc9d5"
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(diversity, tightness)`` as defined in the module docstring, grouping by label value."""
    if z.dim() != 2:
        raise ValueError(f"ordinal_entropy: features must be (B, d), got {tuple(z.shape)}")
    y = y.reshape(-1)
    if z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"ordinal_entropy: {z.shape[0]} features vs {y.shape[0]} labels")
    uniq, inv, counts = torch.unique(y, return_inverse=True, return_counts=True)
    centers = torch.zeros(uniq.numel(), z.shape[1], dtype=z.dtype, device=z.device)
    centers = centers.index_add(0, inv, z) / counts.to(z.dtype)[:, None]
    return oe_core(z, inv, centers, uniq.to(z.dtype), tightness_form=tightness_form)


def ordinal_entropy(z: torch.Tensor, y: torch.Tensor, lambda_d: float = 1.0,
                    lambda_t: float = 1.0, tightness_form: str = "75fc9d5") -> torch.Tensor:
    """OE regulariser ``lambda_t * tightness - lambda_d * diversity`` on features ``z`` (B, d)."""
    diversity, tightness = ordinal_entropy_terms(z, y, tightness_form)
    return lambda_t * tightness - lambda_d * diversity


class OrdinalEntropy(LossWithParts):
    """Ordinal Entropy as a module: ``OrdinalEntropy(lambda_d=1, lambda_t=1)(features, labels)`` ->
    scalar ``lambda_t * tightness - lambda_d * diversity``, grouping the batch by label value (float
    labels) or, with ``bin_width``, by ``floor(label / bin_width)``. ``parts`` holds the detached
    ``diversity`` and ``tightness``. ``tightness_form``: ``"75fc9d5"`` (the distance, upstream HEAD)
    or ``"4a4dd5f"`` (its square, the first upload); see the module docstring.

    >>> import torch
    >>> z, y = torch.randn(6, 3), torch.tensor([20., 20., 31., 31., 45., 45.])
    >>> oe = OrdinalEntropy()
    >>> loss = oe(z, y)
    >>> sorted(oe.parts), loss.shape
    (['diversity', 'tightness'], torch.Size([]))
    """

    repr_fields = ("lambda_d", "lambda_t", "bin_width", "tightness_form")

    def __init__(self, lambda_d: float = 1.0, lambda_t: float = 1.0, bin_width: Optional[float] = None,
                 tightness_form: str = "75fc9d5"):
        super().__init__()
        if bin_width is not None and not bin_width > 0:
            raise ValueError(f"OrdinalEntropy: bin_width must be > 0, got {bin_width!r}")
        if tightness_form not in TIGHTNESS_FORMS:
            raise ValueError(f"OrdinalEntropy: tightness_form must be one of {', '.join(TIGHTNESS_FORMS)}, "
                             f"got {tightness_form!r}")
        self.lambda_d, self.lambda_t, self.bin_width = float(lambda_d), float(lambda_t), bin_width
        self.tightness_form = tightness_form

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = labels.reshape(-1)
        if self.bin_width is not None:
            y = torch.floor(y / self.bin_width)
        diversity, tightness = ordinal_entropy_terms(features, y, self.tightness_form)
        return self.record(self.lambda_t * tightness - self.lambda_d * diversity,
                           diversity=diversity, tightness=tightness)
