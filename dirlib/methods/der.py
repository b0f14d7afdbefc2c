"""Deep evidential regression (Amini et al. 2020): a Normal-Inverse-Gamma head, NLL plus
``coeff * |y - gamma| (2 nu + alpha)``; the prediction is ``gamma``. ``lds+fds+der`` is the
paper's LDS+FDS+DER row.

The model's own head gives ``gamma``; a ``Linear(d, 3)`` owned by the callback maps the same head
input to ``nu, alpha, beta`` (the same parameterisation as one ``Linear(d, 4)`` head). It sees
the head input after every other feature transform (FDS): ``order = 2``."""
from ..losses.der import NIGParams, der_loss
from ..train import Callback
from .common import HeadInput, Part, feat_dim, seeded
from .options import Default

NAMES = {"der": "Deep evidential regression (Amini et al. 2020): NIG head, NLL + 0.01 |y - gamma| "
                "(2 nu + alpha), prediction gamma; lds+fds+der is the paper's LDS+FDS+DER."}
DEFAULTS = {"coeff": Default(0.01, source="VIR rerun.py --lambda_reg; EDL hello_world.py (1e-2)"),
            "softplus_beta": Default(0.01, source="VIR LinearNormalGamma (Softplus(beta=0.01)); EDL uses 1")}


class DERCallback(Callback):
    """NIG outputs ``(nu, alpha, beta)`` from the head input; ``gamma`` is the model's head."""

    name = "der"
    order = 2

    def __init__(self, params, coeff):
        super().__init__()
        self.params, self.coeff = params, coeff
        self.slot = HeadInput("der")

    def feature_transform(self, st, b):
        return self.slot.put if st.model.training else None

    def loss(self, pred, y, weights):
        nu, alpha, beta = self.params(self.slot.pop())
        return der_loss(y, pred, nu, alpha, beta, coeff=self.coeff, weights=weights)


def build(name, opts, cfg, data) -> Part:
    with seeded(cfg.seed * 7919 + 11):
        params = NIGParams(feat_dim(cfg, data), softplus_beta=opts["softplus_beta"])
    cb = DERCallback(params, opts["coeff"])
    return Part(callbacks=[cb], base_loss=cb.loss)
