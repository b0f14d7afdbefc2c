"""What machine a measurement ran on: date, platform, CPU, threads, torch, GPU and git commit.

>>> p = provenance("cpu")
>>> sorted(k for k in p if k in ("cpu_model", "device", "torch", "torch_threads"))
['cpu_model', 'device', 'torch', 'torch_threads']
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Optional

import numpy as np
import torch


def git_commit(root: Optional[Path] = None) -> Optional[str]:
    """The commit ``HEAD`` points to, read from ``.git`` (no git process)."""
    root = Path(root or Path(__file__).resolve().parents[2])
    g = root / ".git"
    try:
        if g.is_file():
            g = (root / g.read_text().split(":", 1)[1].strip()).resolve()
        head = (g / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        common = g
        if (g / "commondir").exists():
            common = (g / (g / "commondir").read_text().strip()).resolve()
        for base in (g, common):
            if (base / ref).exists():
                return (base / ref).read_text().strip()
        for base in (g, common):
            packed = base / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except OSError:
        return None
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device) -> dict:
    device = torch.device(device)
    p = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
         "host_platform": platform.platform(), "python": platform.python_version(),
         "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(),
         "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
         "numpy": np.__version__, "git_commit": git_commit(), "device": str(device),
         "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        p["gpu"] = torch.cuda.get_device_name(device)
        p["cuda"] = torch.version.cuda
    return p
