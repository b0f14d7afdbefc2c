"""The one command line: ``python -m dirlib <verb> ...``.

Verbs: ``train``, ``posthoc``, ``methods``, ``datasets``, ``data``, ``bench`` (here), and
``sweep``, ``tune``, ``audit``, ``results``, ``findings``, ``book`` (each handed to its module's
``main``; ``python -m dirlib <verb> -h`` prints its options).

Example::

    python -m dirlib train --dataset utkface-dir --method vanilla --epochs 5 --seed 0 \\
        --data-dir ../shared/data --out runs/utk-vanilla
"""
from __future__ import annotations

import argparse
import json
import sys

from .cli_args import dataset_name, parse_kv
from .datasets import main_metric

#: the verbs whose options live in their own module (``module.main(argv)``), with their help
VERBS = {
    "sweep": ("dirlib.tools.sweep", "train many (method x seed) runs: local processes, Ray or SLURM"),
    "tune": ("dirlib.tools.tune", "choose a method's setting on validation data, then train every seed"),
    "benchmark": ("dirlib.tools.benchmark", "the fair benchmark: every method tuned with one budget, "
                                            "5 seeds (docs/benchmark-plan.md)"),
    "audit": ("dirlib.paper.audit", "the audit of the paper's method: its runs, tables and answer"),
    "results": ("dirlib.paper.record_tables", "tables, README blocks and checks from stored run records; "
                                  "reproduce a record"),
    "findings": ("dirlib.paper.findings", "regenerate the findings written into the book and README"),
    "book": ("dirlib.paper.book", "execute the notebooks and build the book"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dirlib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for verb, (_, help_) in VERBS.items():
        v = sub.add_parser(verb, help=help_, add_help=False)
        v.add_argument("args", nargs=argparse.REMAINDER)
    t = sub.add_parser("train", help="train and evaluate one method; writes OUT/run.json")
    t.add_argument("--dataset", required=True, type=dataset_name,
                   help="a dataset name (python -m dirlib datasets lists them) or a dataset file "
                        "(*.toml) describing a table of your own")
    t.add_argument("--method", default="vanilla",
                   help="method name, components joined with '+' (e.g. lds+fds, ranksim+frobenius); "
                        "`python -m dirlib methods` lists them")
    t.add_argument("--base-loss", default=None,
                   help="for multi-phase methods (frobenius): the DIR method it is added to, e.g. "
                        "--method frobenius --base-loss ranksim is ranksim+frobenius")
    t.add_argument("--loss", default=None, choices=["mse", "l1", "huber", "focal_l1", "focal_mse"],
                   help="elementwise regression loss (default: l1 for ages, mse for STS-B)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--lr-milestones", type=int, nargs="*")
    t.add_argument("--grad-clip", type=float)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, cuda:N")
    t.add_argument("--num-workers", type=int, default=0)
    t.add_argument("--data-cache", choices=("off", "cpu", "gpu"), default="off",
                   help="face images: decode each split once (cached on disk) and draw augmented "
                        "batches from host (cpu) or GPU memory (gpu); off: PIL per item (reference)")
    t.add_argument("--img-size", type=int, help="image side for face datasets (64 CPU, 224 GPU)")
    t.add_argument("--model", default=None, help="encoder: resnet18, resnet50, bilstm, mlp")
    t.add_argument("--model-arg", nargs="*", metavar="KEY=VALUE", help="encoder kwargs, e.g. hidden=128")
    t.add_argument("--data-arg", nargs="*", metavar="KEY=VALUE", help="loader kwargs")
    t.add_argument("--method-arg", nargs="*", metavar="KEY=VALUE",
                   help="method hyper-parameters, e.g. beta=1.0 alpha=0.1 (see docs)")
    t.add_argument("--max-batches", type=int, help="cap training batches per epoch (quick runs)")
    t.add_argument("--subset-train", type=int, help="quick runs: random training subset of N samples")
    t.add_argument("--subset-eval", type=int, help="quick runs: balanced val/test subsets of N samples "
                                                   "(shots still follow the full training counts)")
    t.add_argument("--data-dir", default=None, help="data root (default: $DIRLIB_DATA)")
    t.add_argument("--out", required=True, help="output folder; OUT/run.json is the run record")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-diagnostics", action="store_true")
    t.add_argument("--overwrite", action="store_true",
                   help="OUT holds a record of another configuration or data: keep it as "
                        "OUT/run.replaced-<time>.json and start anew (without this flag such a "
                        "rerun is refused and nothing is written)")
    t.add_argument("--save-predictions", choices=("csv", "parquet"), default=None,
                   help="write OUT/predictions.csv|parquet: one row per validation and test "
                        "sample (split, row, label, bin, shot, prediction), from the final model")
    m = sub.add_parser("methods", help="list method names (--defaults: every option, its default "
                                       "and where it comes from)")
    m.add_argument("--defaults", action="store_true",
                   help="a Markdown table of every method's options (--method-arg NAME.KEY=VALUE)")
    ds = sub.add_parser("datasets", help="list the named datasets: family, metric, images, recipe, "
                                         "and whether the data root has their files",
                        description="List the named datasets. Your own table is a dataset too: "
                                    "give --dataset PATH.toml to any command; every key of that "
                                    "file, its default and an example are in "
                                    "docs/table-datasets.md.")
    ds.add_argument("--data-dir", default=None)
    ds.add_argument("action", nargs="?", choices=("list", "fetch-example"), default="list",
                    help="fetch-example NAME --out DIR: copy a public example table (checked by "
                         "its sha256) from the package that ships it")
    ds.add_argument("name", nargs="?", help="fetch-example: the table (randhie)")
    ds.add_argument("--out", default="examples", help="fetch-example: the folder to copy it to")
    d = sub.add_parser("data", help="load a dataset and print its summary")
    d.add_argument("--dataset", required=True, type=dataset_name)
    d.add_argument("--data-dir", default=None)
    ph = sub.add_parser("posthoc", help="phases 2-3 of the paper's method (text or published-code "
                                        "protocol, or a control) on a finished run")
    ph.add_argument("--from", dest="base", required=True, metavar="RUN_DIR",
                    help="a completed single-phase run (RUN_DIR/run.json + RUN_DIR/ckpt/main.pt)")
    ph.add_argument("--variant", required=True, choices=["text", "text-no-norm", "code", "code-no-norm"])
    ph.add_argument("--out", required=True, help="output folder; OUT/run.json is the record")
    ph.add_argument("--data-dir", default=None, help="data root (default: $DIRLIB_DATA)")
    ph.add_argument("--option", nargs="*", metavar="KEY=VALUE",
                    help="PosthocConfig fields, e.g. regression_epochs=40 linear_epochs=[1,3,5] "
                         "gamma=0.1 (dirlib/paper/posthoc.py)")
    ph.add_argument("--full-grid", action="store_true",
                    help="the published grid: 40 fine-tune epochs x norm-net epochs 1,3,...,19")
    ph.add_argument("--save-predictions", choices=("csv", "parquet"), default=None,
                    help="text variants: OUT/predictions.csv|parquet from the fine-tuned model "
                         "(validation and test rows)")
    from .tools.bench import add_arguments as _bench_arguments
    _bench_arguments(sub.add_parser("bench", help="time a training step of every method against "
                                                  "vanilla (dirlib/tools/bench.py, docs/performance.md)"))
    return p


def config_from_args(a):
    """The :class:`~dirlib.train.RunConfig` of ``python -m dirlib train`` arguments."""
    from .train import RunConfig
    d = {}
    for k in ("epochs", "batch_size", "lr", "weight_decay", "grad_clip", "img_size"):
        v = getattr(a, k)
        if v is not None:
            d[k] = v
    if a.lr_milestones is not None:
        d["lr_milestones"] = tuple(a.lr_milestones)
    from .train import canonical_method
    method = a.method
    if a.base_loss:
        method = f"{a.base_loss}+{method}"
    method = canonical_method(method)          # LDS -> lds; lds+, +lds, lds++fds refused

    def kv(option, items):
        try:
            return parse_kv(items)
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"{option}: {e}") from None
    return RunConfig.for_dataset(a.dataset, method=method, loss=a.loss, seed=a.seed, device=a.device,
                     num_workers=a.num_workers, data_cache=a.data_cache, model=a.model,
                     model_kwargs=kv("--model-arg", a.model_arg),
                     data_kwargs=kv("--data-arg", a.data_arg),
                     method_kwargs=kv("--method-arg", a.method_arg),
                     max_batches=a.max_batches, subset_train=a.subset_train,
                     subset_eval=a.subset_eval, progress=not a.no_progress,
                     diagnostics=not a.no_diagnostics, **d)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in VERBS:
        import importlib
        return importlib.import_module(VERBS[argv[0]][0]).main(argv[1:])
    a = build_parser().parse_args(argv)
    if a.cmd == "methods":
        from .methods import catalog, defaults_table
        if a.defaults:
            print(defaults_table())
            return 0
        for name, info in catalog().items():
            print(f"{name:14s} {info.doc}")
        aliases = {n: i.doc.split()[2] for n, i in catalog().items() if i.doc.startswith("Alias of")}
        print(f"\n{len(catalog())} names: {len(catalog()) - len(aliases)} distinct methods and "
              f"{len(aliases)} aliases (" + ", ".join(f"{a} = {b}" for a, b in aliases.items())
              + "); combine them with '+'")
        return 0
    if a.cmd == "bench":
        from .tools.bench import run_bench
        return run_bench(a)
    if a.cmd == "datasets" and a.action == "fetch-example":
        from .datasets.table import EXAMPLES, fetch_example
        if not a.name:
            print(f"error: datasets fetch-example needs a table's name; known: "
                  f"{', '.join(EXAMPLES)}", file=sys.stderr)
            return 2
        try:
            print(fetch_example(a.name, a.out))
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if a.cmd == "datasets":
        import os
        from .datasets import catalog
        root = a.data_dir or os.environ.get("DIRLIB_DATA")
        if not root:
            print("no data root given (--data-dir DIR or DIRLIB_DATA; make uses ../shared/data "
                  "when it exists): the real datasets below are not looked for", file=sys.stderr)
        for name, info in catalog().items():
            have = ("found" if info.has_data(a.data_dir) else
                    "missing" if root or info.small else "not looked for (no data root)")
            print(f"{name:14s} {info.title:20s} family {info.family}, {info.main_metric.upper()}"
                  f"{', images' if info.images else ''}; data {have}; recipe "
                  + " ".join(f"{k}={v}" for k, v in info.recipe.items()))
        return 0
    if a.cmd == "data":
        from .datasets import load_dataset
        print(json.dumps(load_dataset(a.dataset, data_dir=a.data_dir).summary(), indent=1,
                         default=str))
        return 0
    if a.cmd == "posthoc":
        return _posthoc(a)
    from .checkpoint import CheckpointError
    from .experiment import RunExists, run_experiment
    from .methods import parse_method
    from .records import RunLocked
    try:
        cfg = config_from_args(a)
        parse_method(cfg.method)  # fail fast with the list of valid names
        cfg.validate()
        rec = run_experiment(cfg, a.out, data_dir=a.data_dir, overwrite=a.overwrite,
                             log=lambda m: print(m, flush=True),
                             save_predictions=a.save_predictions)
    except (RunExists, RunLocked, CheckpointError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"interrupted ({e or 'SIGINT'}): {a.out}/run.json says so; the same command resumes",
              file=sys.stderr)
        return 130
    metric = main_metric(cfg.dataset)
    print(f"test {metric}: {_metric_line(rec['test'], metric)}")
    print(f"run record: {a.out}/run.json")
    return 0


def _metric_line(test: dict, metric: str) -> str:
    """``all 3.0712  many 2.5  median nan  few nan``: a shot without samples prints nan."""
    def one(s):
        v = (test.get(s) or {}).get(metric)
        return f"{s} {v:.4f}" if isinstance(v, (int, float)) else f"{s} nan"
    return "  ".join(one(s) for s in ("all", "many", "median", "few"))


def _posthoc(a) -> int:
    from .paper.posthoc import PUBLISHED_LINEAR_EPOCHS, PosthocConfig, run_posthoc
    opts = parse_kv(a.option)
    if a.full_grid:
        opts.setdefault("regression_epochs", 40)
        opts.setdefault("linear_epochs", list(PUBLISHED_LINEAR_EPOCHS))
    import dataclasses
    known = {f.name for f in dataclasses.fields(PosthocConfig)} - {"variant"}
    unknown = sorted(set(opts) - known)
    if unknown:
        print(f"error: unknown posthoc --option {', '.join(unknown)}; valid: "
              f"{', '.join(sorted(known))}", file=sys.stderr)
        return 2
    try:
        pc = PosthocConfig(variant=a.variant, **opts)
    except (TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .checkpoint import CheckpointError
    from .records import RunLocked
    from .experiment import sigterm_as_interrupt
    try:
        with sigterm_as_interrupt():     # from the start, not only once the record exists
            rec = run_posthoc(a.base, a.variant, a.out, data_dir=a.data_dir, config=pc,
                              save_predictions=a.save_predictions)
    except (RunLocked, CheckpointError, RuntimeError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"interrupted ({e or 'SIGINT'}): {a.out}/run.json says so; the same command resumes",
              file=sys.stderr)
        return 130
    metric = main_metric(rec["config"]["dataset"])
    print(f"test {metric} ({rec.get('final')}): {_metric_line(rec['test'], metric)}")
    print(f"record: {a.out}/run.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
