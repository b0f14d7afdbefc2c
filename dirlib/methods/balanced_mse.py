"""Balanced MSE (Ren et al. 2022): the regression loss against the training label prior, learnt
noise ``sigma``. Three estimates of the prior, one name each: ``bmc`` (batch Monte-Carlo; the
paper's BMSE rows, alias ``bmse``), ``gai`` (GMM analytic integration), ``bni`` (bin-based
numerical integration)."""

from ..data.base import Binning
from ..train import Callback
from .common import Part
from .options import Default, family

NAMES = {"bmc": "Balanced MSE, batch Monte-Carlo (BMC).",
         "gai": "Balanced MSE, GMM analytic integration (GAI; 8-component GMM prior).",
         "bni": "Balanced MSE, bin-based numerical integration (BNI).",
         "bmse": "Alias of bmc (the paper's BMSE rows use BMC)."}
_INIT_SIGMA = Default(10.0, sts=0.1, source="BMSE imdb-wiki-dir/README.md (10.0); STS-B ours: 0.1 in "
                                            "model space (0.5 score points; 1.0 gave test MSE 4.95, "
                                            "results/withdrawn/)")
_COMMON = {"init_sigma": _INIT_SIGMA,
           "fix_sigma": Default(False, source="BMSE train.py (--fix_noise_sigma)"),
           "sigma_lr": Default(1e-2, source="BMSE train.py (--sigma_lr), its own optimizer group")}
DEFAULTS = {"bmc": _COMMON, "bmse": _COMMON, "bni": _COMMON,
            "gai": {**_COMMON, "K": Default(8, source="BMSE preprocess_gmm.py (K = 8, random_state 0)")}}

class BalancedMSECallback(Callback):
    """Owns the loss module (and its learnt ``noise_sigma``, in a group of its own lr)."""

    name = "bmse"

    def __init__(self, module, sigma_lr):
        super().__init__()
        self.module, self.sigma_lr = module, sigma_lr

    def param_groups(self):
        return self.module.param_groups(self.sigma_lr)

    def loss(self, pred, y, weights):
        return self.module(pred, y)

    def after_step(self, st):
        st.logs["bmse_sigma"] = self.module.noise_sigma.detach()

def build(name, opts, cfg, data) -> Part:
    from ..losses.bmse import BalancedMSE, bni_buckets, fit_gmm
    imp = "bmc" if name == "bmse" else name
    y_model = data.train_labels / data.target_scale
    extra = {}
    if imp == "gai":
        extra["gmm"] = fit_gmm(y_model, K=opts["K"], seed=0)
    if imp == "bni":
        if family(data) == "sts":
            c, w = bni_buckets(y_model, binning=Binning(data.binning.edges / data.target_scale))
        else:
            c, w = bni_buckets(y_model)
        extra.update(bucket_centers=c, bucket_weights=w)
    module = BalancedMSE(imp, init_noise_sigma=opts["init_sigma"], fix_sigma=opts["fix_sigma"], **extra)
    cb = BalancedMSECallback(module, opts["sigma_lr"])
    return Part(callbacks=[cb], base_loss=cb.loss)

