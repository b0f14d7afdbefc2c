"""dirlib: deep imbalanced regression, one trainer, every method, and the Frobenius-norm method.

Companion to *Enhancing Deep Imbalanced Regression via Frobenius Norm Regularization*.
"""
__version__ = "0.1.0"


#: the public modules, imported on first use (``import dirlib`` stays light: no torch)
_MODULES = ("data", "losses", "metrics", "methods", "stats", "tune")


def __getattr__(name):   # dirlib.run without importing torch at "import dirlib"
    if name == "run":
        from .api import run
        return run
    if name in _MODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'dirlib' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["run", *_MODULES])
