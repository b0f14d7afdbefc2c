"""The "0 of 122" check, rerunnable: does the published post-hoc script load the base it names?

``docs/published-bases.md`` reads the upstream code at named commits. This module rebuilds what
matters here, with no upstream code:

* the ResNets of the DIR repositories (RankSim's and ConR's ``resnet.py``, Frobs-DIR's ``model.py``):
  torchvision's layout with a one-output head named ``linear`` (:func:`upstream_resnet`);
* a base saved as RankSim's and ConR's ``train.py`` save it: a ResNet-50 wrapped in
  ``torch.nn.DataParallel``, its ``state_dict()`` under ``'state_dict'``;
* the load of ``AgeDB-DIR/train_methods.py --resume`` (Frobs-DIR ``76571a2``): a plain ResNet-18,
  ``load_state_dict(torch.load(path)['state_dict'], strict=False)``;
* a base saved as Frobs-DIR's own ``train.py`` saves it (``torch.save(model, path)``, a pickled
  module);
* ``train.sh``'s loop ``for name in 'RankSim', 'ConR', ...`` run by bash.

It counts the ResNet-18's tensors whose names occur in each checkpoint and whose values changed on
loading. ::

    python -m dirlib audit published-bases
"""
from __future__ import annotations

import io
import shutil
import subprocess
from typing import Optional

import torch

#: the names the published sweep passes (``train.sh`` at 76571a2), as bash reads its loop
TRAIN_SH_LOOP = "for name in 'RankSim', 'ConR', 'MSE', 'MAE', 'MAE_LDS', 'MSE_LDS'; do echo \"$name\"; done"


def upstream_resnet(depth: int) -> torch.nn.Module:
    """A ResNet-18 or -50 with the upstream repositories' tensor names: torchvision's layout, the
    head a ``Linear(512 * expansion, 1)`` named ``linear``."""
    import torchvision
    m = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}[depth](weights=None)
    m.linear = torch.nn.Linear(m.fc.in_features, 1)
    del m.fc
    return m


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_as_posthoc_script(blob: bytes) -> dict:
    """Load ``blob`` as ``train_methods.py --resume`` does into a fresh plain ResNet-18; count the
    names found and the tensors that changed. ``{"error": ...}`` where the script would stop."""
    target = upstream_resnet(18)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    try:
        # the script's torch.load(path) predates weights_only; the pickled-module case is read as
        # it was then, from bytes this function made itself
        ckpt = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
        state = ckpt["state_dict"]
    except Exception as e:       # where the script stops
        return {"loaded": None, "error": f"{type(e).__name__}: {e}"}
    try:
        result = target.load_state_dict(state, strict=False)
    except RuntimeError as e:    # strict=False skips missing names, never a shape mismatch
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        return {"loaded": None, "error": f"RuntimeError: {first}"}
    after = target.state_dict()
    changed = sum(not torch.equal(before[k], after[k]) for k in before)
    return {"loaded": changed, "names_found": sum(k in state for k in before),
            "checkpoint_tensors": len(state), "resnet18_tensors": len(before),
            "reported_missing": len(result.missing_keys),
            "unexpected": len(result.unexpected_keys)}


def train_sh_names() -> Optional[list]:
    """The names ``train.sh``'s loop passes, as bash reads them (None without bash)."""
    bash = shutil.which("bash")
    if bash is None:
        return None
    out = subprocess.run([bash, "-c", TRAIN_SH_LOOP], capture_output=True, text=True, timeout=10)
    return out.stdout.split()


def check(seed: int = 0) -> dict:
    """Every case of ``docs/published-bases.md`` that does not need the upstream files."""
    torch.manual_seed(seed)
    r50 = torch.nn.DataParallel(upstream_resnet(50))      # RankSim's / ConR's train.py
    r18_dp = torch.nn.DataParallel(upstream_resnet(18))   # the same save, of the right depth
    r50_plain = upstream_resnet(50)
    cases = {
        "RankSim/ConR base (ResNet-50 saved under DataParallel)":
            load_as_posthoc_script(_saved({"state_dict": r50.state_dict()})),
        "a ResNet-18 saved under DataParallel":
            load_as_posthoc_script(_saved({"state_dict": r18_dp.state_dict()})),
        "a ResNet-50 saved without DataParallel":
            load_as_posthoc_script(_saved({"state_dict": r50_plain.state_dict()})),
        "a ResNet-18 saved without DataParallel (what a working load needs)":
            load_as_posthoc_script(_saved({"state_dict": {
                # every value moved, as training moves it, so that a load shows in every tensor
                k: v + 1 for k, v in upstream_resnet(18).state_dict().items()}})),
        "MSE/MAE/MSE_LDS base (a pickled module, torch.save(model))":
            load_as_posthoc_script(_saved(upstream_resnet(18))),
    }
    return {"cases": cases, "train_sh_names": train_sh_names()}


def report(result: dict) -> str:
    lines = []
    for name, c in result["cases"].items():
        if c.get("loaded") is None:
            lines.append(f"{name}: the script stops ({c['error'][:90]})")
        else:
            lines.append(f"{name}: {c['names_found']} of the ResNet-18's {c['resnet18_tensors']} "
                         f"tensor names found among the checkpoint's {c['checkpoint_tensors']}; "
                         f"{c['loaded']} tensors changed value on loading; "
                         f"load_state_dict(strict=False) reported {c['reported_missing']} missing, "
                         f"{c['unexpected']} unexpected, and no error")
    names = result["train_sh_names"]
    lines.append("train.sh passes: " + (", ".join(repr(n) for n in names) if names is not None
                                       else "(no bash here)"))
    return "\n".join(lines)


def main() -> int:
    print(report(check()))
    return 0
