"""``dirlib.run``: train and evaluate one method on any :class:`~dirlib.data.base.DIRData`, with
your own encoder, and get the run record back.

>>> import numpy as np, dirlib
>>> from dirlib.data import from_arrays
>>> rng = np.random.RandomState(0)
>>> y = np.round(rng.gamma(2.0, 10.0, 400), 1)
>>> x = np.c_[y / 50, np.sin(y / 10)] + 0.05 * rng.randn(400, 2)
>>> data = from_arrays(x[:300], y[:300], x[300:350], y[300:350], x[350:], y[350:], bin_width=5.0)
>>> rec = dirlib.run("vanilla", data, epochs=2, seed=0)
>>> rec["status"], sorted(rec["test"]["all"])[:3]
('completed', ['gm', 'mae', 'mse'])
"""
from __future__ import annotations

import copy
import hashlib
import tempfile
from pathlib import Path
from typing import Optional

import torch


def _feature_dim(encoder: torch.nn.Module, data) -> int:
    x = data.train[0][0]
    x = x[None] if isinstance(x, torch.Tensor) else torch.as_tensor(x)[None]
    enc = copy.deepcopy(encoder).eval()
    with torch.no_grad():
        z = enc(x)
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != 1:
        raise ValueError("dirlib.run: encoder must map a batch of inputs to (B, d) features, got "
                         f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__} for a batch of one")
    return int(z.shape[1])


def run(method: str, data, *, encoder: Optional[torch.nn.Module] = None, epochs: int, seed: int = 0,
        out=None, overwrite: bool = False, return_model: bool = False, **config):
    """Train ``method`` (any name of :func:`dirlib.methods.method_names`, including the
    multi-phase ``frobenius``, ``rrt`` and ``rnc``, and ``+`` compositions) on ``data`` for ``epochs`` with ``seed``, and return the run
    record (a dict).

    ``encoder``: any ``nn.Module`` mapping a batch of inputs to ``(B, d)`` features; dirlib adds
    the linear head, and every build of the model (multi-phase methods build it more than once)
    starts from a copy of it, with the weights it has. The record names it
    ``custom:<class>:<hash of its repr>`` and its initial weights by their hash
    (``config.encoder_weights``): runs of one architecture on several seeds aggregate, and a rerun
    into the same ``out`` with other weights is another run. Without it the data's default encoder
    is used. ``out``: a folder for
    ``run.json`` and checkpoints (resumable, as the CLI); without it the run works in a temporary
    folder that is removed before ``run`` returns, so nothing is left on disk. ``overwrite``: an
    existing record of another run in ``out`` is kept beside as ``run.replaced-<time>.json`` and the
    run starts anew (the CLI's ``--overwrite``). The caller's random states (Python, numpy, torch)
    are the same after ``run`` as before. ``seed`` seeds the run (its data order, its augmentation
    and dirlib's own encoders); a given ``encoder`` keeps the weights it has, so seed it yourself
    to pair runs of several seeds.
    ``return_model``: return ``(record, model)``: the trained model as the run evaluated it (in
    eval mode; ``model(x)`` gives ``(prediction / target_scale, features)``), to check a number or
    predict new inputs. A run found completed in ``out`` has no model in memory: that is refused
    (use ``overwrite=True``).
    ``config``: other :class:`~dirlib.train.RunConfig` fields (``lr``, ``batch_size``,
    ``method_kwargs`` ...). The record's ``data.task_family`` shows the task family whose defaults
    applied.
    """
    import numbers
    from .experiment import run_experiment
    from .models import register_encoder
    from .train import RunConfig
    for name, v in (("epochs", epochs), ("seed", seed)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"dirlib.run: {name} must be an integer, got {v!r}")
    config = dict(config)
    config.setdefault("progress", False)
    if encoder is not None:
        if not isinstance(encoder, torch.nn.Module):
            raise TypeError(f"dirlib.run: encoder must be an nn.Module, got {type(encoder).__name__}")
        template = copy.deepcopy(encoder)
        # the record names the encoder by its class and architecture (its repr): runs of one
        # encoder type on several seeds aggregate; its initial weights are the caller's
        arch = hashlib.sha256(repr(template).encode()).hexdigest()[:10]
        name = f"custom:{type(encoder).__name__}:{arch}"
        register_encoder(name, lambda: copy.deepcopy(template), _feature_dim(template, data))
        config["model"] = name
        # its initial weights are part of the run's identity: a rerun into the same ``out`` with
        # other weights is another run (refused, or --overwrite), not the old record returned
        weights = hashlib.sha256()
        for k, v in template.state_dict().items():
            weights.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
        config["encoder_weights"] = weights.hexdigest()[:16]
    cfg = RunConfig.for_dataset(data.name, method=method, epochs=int(epochs), seed=int(seed),
                                **config)
    import random
    import numpy as np
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            kw = {"keep_model": True} if return_model else {}
            if out is not None:
                return run_experiment(cfg, Path(out), data=data, overwrite=overwrite, **kw)
            with tempfile.TemporaryDirectory(prefix="dirlib-run-") as tmp:
                return run_experiment(cfg, Path(tmp), data=data, **kw)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
