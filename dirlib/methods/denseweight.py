"""DenseWeight (Steininger et al., *Machine Learning* 2021): sample weights that fall with the
label's kernel density, ``max(1 - alpha * p'(y), eps)`` normalised to mean 1
(:func:`dirlib.rebalancing.weighting.dense_weights`). ``alpha`` sets how strongly dense labels are
down-weighted: 0 is no re-weighting."""
from .common import Part
from .options import Default

NAMES = {"denseweight": "DenseWeight (Steininger et al. 2021): weight 1 - alpha * (min-max scaled "
                        "Gaussian KDE density of the label, Silverman bandwidth), clipped at eps, "
                        "mean 1 (alpha 1)."}
DEFAULTS = {
    "alpha": Default(1.0, source="Steininger et al. 2021; the denseweight package's default"),
    "eps": Default(1e-6, source="the denseweight package's default"),
}


def build(name, opts, cfg, data) -> Part:
    return Part(weighting={"reweight": "denseweight", "alpha": float(opts["alpha"]),
                           "eps": float(opts["eps"])})
