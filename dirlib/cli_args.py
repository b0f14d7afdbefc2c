"""Argument parsing shared by every verb of ``python -m dirlib``: ``KEY=VALUE`` options and
dataset names. Public, so no command line reaches into another's private helpers.

>>> parse_kv(["epochs=3", "name=utk", "milestones=[7, 9]"])
{'epochs': 3, 'name': 'utk', 'milestones': [7, 9]}
"""
from __future__ import annotations

import argparse
import json


def parse_kv(items) -> dict:
    """``["KEY=VALUE", ...]`` as a dict; each VALUE is read as JSON when it parses, else kept as
    a string. An item without ``=`` raises :class:`argparse.ArgumentTypeError` naming it."""
    out = {}
    for it in items or []:
        if "=" not in it:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def dataset_name(name: str) -> str:
    """An argparse ``type``: a known dataset name or a dataset file; anything else is refused with
    the list of names."""
    from .datasets import get
    try:
        get(name)
    except (ValueError, OSError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name
