"""dirlib: deep imbalanced regression, one trainer, every method, and the Frobenius-norm method.

Companion to *Enhancing Deep Imbalanced Regression via Frobenius Norm Regularization*.

Three packages, one way down: the core library is ``dirlib`` itself (data, datasets, models,
losses, methods, train, experiment, checkpoint, records, metrics, diagnostics, stats, api);
``dirlib.tools`` (sweep, tune, bench, throughput, machine, reproduce) sits on it, and
``dirlib.paper`` (posthoc, audit, results, runs, figures, plots, findings, widgets, book, ridge,
naming) on both. ``python -m dirlib <verb>`` (``dirlib.cli``) is the one command line above them.
"""
__version__ = "0.1.0"


#: the public modules, imported on first use (``import dirlib`` stays light: no torch)
_MODULES = ("data", "datasets", "losses", "metrics", "methods", "stats")
#: the other two packages: the paper's companion and the tools (``dirlib.tune`` is the tools')
_PACKAGES = {"paper": "paper", "tools": "tools", "tune": "tools.tune"}


def __getattr__(name):   # dirlib.run without importing torch at "import dirlib"
    if name == "run":
        from .api import run
        return run
    if name in _MODULES or name in _PACKAGES:
        import importlib
        return importlib.import_module(f"{__name__}.{_PACKAGES.get(name, name)}")
    raise AttributeError(f"module 'dirlib' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["run", *_MODULES, *_PACKAGES])
