"""dirlib: deep imbalanced regression, one trainer, every method, and the Frobenius-norm method.

Companion to *Enhancing Deep Imbalanced Regression via Frobenius Norm Regularization*.
"""
__version__ = "0.1.0"
