"""RRT (Kang et al. 2020, as the DIR benchmark's ``--retrain_fc``): train the whole model without
re-weighting, then re-initialise the linear head, freeze everything else and retrain the head with
re-weighting (default: SQINV for ages, INV for STS-B; or the composition's, e.g. ``rrt+lds``)."""
import copy

from .common import Part, compute_weights, default_reweight
from .options import Default, epochs_of_run
from .phases import Phase

NAMES = {"rrt": "RRT: train, then re-train only the linear head with re-weighting "
                "(two stages; rrt.epochs for the second)."}
DEFAULTS = {"epochs": Default(epochs_of_run, source="Yang train.py --retrain_fc (as many epochs as the "
                                                    "first stage)")}
#: methods whose head modules the second stage (a plain linear head) would drop
CONFLICTS = {m: f"{m} cannot be combined with rrt: its second stage keeps only the linear head and "
                f"drops this method's head modules" for m in ("der", "vae", "vir")}


def phases(spec, cfg, data):
    s = spec.settings["rrt"]
    w = spec.settings.get("weighting") or {"reweight": default_reweight(data)}

    def main(r):
        plain = copy.copy(spec)
        plain.sample_weights = None
        return r.fit("main", plain)

    def retrain_head(r):
        r.model.head.reset_parameters()
        for p in r.model.encoder.parameters():
            p.requires_grad_(False)
        head = copy.copy(spec)
        head.sample_weights = (spec.sample_weights if spec.sample_weights is not None
                               else compute_weights(w, data))
        head.callbacks = [cb for cb in spec.callbacks if cb.name == "bmse"]
        return {**r.fit("rrt", head, epochs=s["epochs"]), "weighting": w}
    return [Phase("main", main), Phase("rrt", retrain_head)]


def build(name, opts, cfg, data) -> Part:
    return Part(phases=phases)
