"""dirlib: deep imbalanced regression, one trainer, every method, and the Frobenius-norm method.

Companion to *Enhancing Deep Imbalanced Regression via Frobenius Norm Regularization*.
"""
__version__ = "0.1.0"


def __getattr__(name):   # dirlib.run without importing torch at "import dirlib"
    if name == "run":
        from .api import run
        return run
    raise AttributeError(f"module 'dirlib' has no attribute {name!r}")
