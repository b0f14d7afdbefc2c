"""The book runner: execute the notebooks with papermill, then build the Jupyter Book.

::

    python -m dirlib book list                                   # the notebooks book/_toc.yml lists
    python -m dirlib book run --params quick|full|FILE.json [--only NAME ...] [--set KEY=JSON ...] [--jobs N]
    python -m dirlib book build [--params quick] [--no-run] [--no-strict] [--jobs N]

* Notebooks are MyST Markdown files ``notebooks/<name>.md`` (jupytext); the book's pages are their
  executed copies ``book/_exec/<name>.ipynb`` (gitignored). A notebook is part of the book when
  ``book/_toc.yml`` lists ``_exec/<name>``: that list is what ``run`` executes, in toc order.
* Every notebook has exactly one ``parameters`` cell assigning exactly the names in :data:`PARAMS`
  (checked before anything runs). A parameter set (``book/params/quick.json``, ``full.json`` or any
  JSON file) gives values for some of them; the others keep the notebook's defaults. Its optional
  ``"notebooks": {"<name>": {...}}`` block overrides values for single notebooks. Relative
  ``DATA_DIR`` / ``RESULTS_DIR`` are taken from the repository root; ``DATA_DIR`` defaults to
  ``$DIRLIB_DATA`` (None when unset: notebooks then use synthetic data) and ``RESULTS_DIR`` to the
  repository's ``results/``.
* Execution: ``papermill.execute_notebook(jupytext.read(md), out, parameters=...,
  kernel_name="python3", execution_timeout=900)`` with the notebook's folder as working directory.
  A failing cell stops the run with the notebook, the cell, the error and the path of the executed
  copy (which holds the traceback). Per-notebook times are printed and written to
  ``book/_exec/timings.json``. ``--jobs N`` runs N notebooks at once, each in its own kernel with
  ``cores // N`` threads (default: 2 on a machine with 2 cores or more), longest first by the last
  build's timings.
* ``build``: runs the notebooks (unless ``--no-run``), copies the optional docs the pages include
  (:data:`OPTIONAL_DOCS`, a placeholder for a missing one) into ``book/_exec/docs/``, then
  ``jupyter-book build book --all`` (``-W -n --keep-going`` unless ``--no-strict``) into
  ``book/_build/html``. The offline JavaScript (``scripts/vendor_js.sh`` -> ``book/_vendor``) is used
  when present; without it the build still works, with a warning, and the pages load MathJax and the
  widget manager from CDNs.

The notebooks resolve their ``DATASET`` and build their configs with :mod:`dirlib.paper.page_runs`
(:func:`~dirlib.paper.page_runs.resolve_dataset`, :func:`~dirlib.paper.page_runs.has_data`,
:func:`~dirlib.paper.page_runs.make_config`); no library module imports this runner.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
EXEC = BOOK / "_exec"
VENDOR = BOOK / "_vendor"
#: arguments of every notebook's kernel: its log is silenced (see :func:`execute`)
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]
DOCS = ROOT / "docs"
EXEC_PREFIX = "_exec/"
#: pages the build writes itself (the staged docs, the execution status): no notebook behind them
GENERATED_PREFIX = "_exec/docs/"
#: docs the "choices and deviations" page includes; a missing one gets a placeholder (build goes on)
OPTIONAL_DOCS = ("frobenius-choices.md", "baseline-defaults.md", "reproduction.md")
SOURCES = ("cached", "rerun")


class BookError(RuntimeError):
    """A notebook, parameter set or build step is wrong; the message says what and where."""


# ----------------------------------------------------------------------------------- parameters
def _is_str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_int_list(v):
    return isinstance(v, list) and len(v) > 0 and all(isinstance(x, int) and not isinstance(x, bool)
                                                      for x in v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


#: every notebook's parameters: name -> (check, description of the valid values)
PARAMS = {
    "QUICK": (lambda v: isinstance(v, bool), "true | false (CPU-quick settings)"),
    "DATASET": (lambda v: isinstance(v, str) and v != "",
                "a dataset name (python -m dirlib datasets lists them), a dataset file (*.toml, a "
                "table of your own) or \"auto\" (real data when DATA_DIR has it, else synthetic)"),
    "METHODS": (lambda v: v is None or (_is_str_list(v) and len(v) > 0),
                "a non-empty list of method names, e.g. [\"vanilla\", \"ranksim+frobenius\"], or null "
                "(the notebook's own list)"),
    "SEEDS": (_is_int_list, "a non-empty list of integers, e.g. [0, 1, 2]"),
    "EPOCHS": (lambda v: v is None or (_is_int(v) and v > 0),
               "a positive integer or null (quick: a few; full: the dataset's recipe)"),
    "DEVICE": (lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v) is not None,
               "\"auto\", \"cpu\", \"cuda\", \"cuda:N\" or \"mps\""),
    "DATA_DIR": (lambda v: v is None or (isinstance(v, str) and v != ""),
                 "a folder path or null ($DIRLIB_DATA; none: synthetic data only)"),
    "RESULTS_DIR": (lambda v: isinstance(v, str) and v != "", "a folder path (run records)"),
    "SOURCE": (lambda v: v in SOURCES, "\"cached\" (committed run records) or \"rerun\" (train now)"),
}
PARAM_NAMES = tuple(PARAMS)


def _valid_list() -> str:
    return "; ".join(f"{k}: {d}" for k, (_, d) in PARAMS.items())


def validate_params(params: dict, where: str = "parameters") -> dict:
    """Check names and types; raise :class:`BookError` listing the valid ones."""
    if not isinstance(params, dict):
        raise BookError(f"{where}: expected a JSON object of parameters, got {type(params).__name__}")
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise BookError(f"{where}: unknown parameter(s) {unknown}; valid parameters: {_valid_list()}")
    for k, v in params.items():
        check, desc = PARAMS[k]
        if not check(v):
            raise BookError(f"{where}: parameter {k} = {json.dumps(v)} is not valid; {k} must be {desc}. "
                            f"Valid parameters: {_valid_list()}")
    return params


def load_params(spec: str) -> dict:
    """``"quick"`` / ``"full"`` (``book/params/<spec>.json``) or a path to a JSON file. Returns
    ``{"common": {...}, "notebooks": {name: {...}}}``, validated."""
    path = BOOK / "params" / f"{spec}.json" if spec in ("quick", "full") else Path(spec)
    if not path.is_file():
        valid = sorted(p.stem for p in (BOOK / "params").glob("*.json"))
        raise BookError(f"parameter set {spec!r} not found ({path}); use one of {valid} or a JSON file")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BookError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise BookError(f"{path}: expected a JSON object")
    per = raw.pop("notebooks", {}) or {}
    common = validate_params(raw, str(path))
    if not isinstance(per, dict):
        raise BookError(f"{path}: \"notebooks\" must map notebook names to parameter objects")
    known = toc_notebooks() if per else []
    for name, p in per.items():
        if name not in known:
            raise BookError(f"{path}: \"notebooks\" names {name!r}, which book/_toc.yml does not "
                            f"list; the notebooks are: {', '.join(known)}")
        validate_params(p, f"{path} (notebooks.{name})")
    return {"common": common, "notebooks": per, "path": str(path)}


def resolve_params(pset: dict, name: str) -> dict:
    """The parameters papermill injects into notebook ``name``: the set's common values, then its
    per-notebook overrides, then ``--set`` overrides, with paths made absolute and DATA_DIR /
    RESULTS_DIR defaulted."""
    p = {**pset["common"], **pset["notebooks"].get(name, {}), **pset.get("overrides", {})}
    if "DATA_DIR" not in p:
        env = os.environ.get("DIRLIB_DATA")
        p["DATA_DIR"] = env if env else None
    if p.get("DATA_DIR"):
        p["DATA_DIR"] = str((ROOT / p["DATA_DIR"]).resolve())
    p["RESULTS_DIR"] = str((ROOT / p.get("RESULTS_DIR", "results")).resolve())
    return validate_params(p, f"parameters for {name}")


# ----------------------------------------------------------------------------------- notebooks
def _yaml():
    try:
        import yaml
    except ImportError:
        raise BookError("the book tools need PyYAML, which comes with the book extra: "
                        "pip install -e '.[book]'") from None
    return yaml


def toc_notebooks(book: Path = BOOK) -> list:
    """Names of the notebooks ``book/_toc.yml`` lists (``file: _exec/<name>``), in toc order."""
    yaml = _yaml()
    toc_path = book / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())
    names = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("file", "root") and isinstance(v, str):
                    f = v[:-6] if v.endswith(".ipynb") else v
                    if (f.startswith(EXEC_PREFIX) and not f.startswith(GENERATED_PREFIX)
                            and f[len(EXEC_PREFIX):] not in names):
                        names.append(f[len(EXEC_PREFIX):])
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(toc)
    return names


def notebook_path(name: str) -> Path:
    return NOTEBOOKS / f"{name}.md"


def check_names(only: Optional[Sequence[str]], valid: Sequence[str]) -> list:
    if not only:
        return list(valid)
    bad = [n for n in only if n not in valid]
    if bad:
        raise BookError(f"unknown notebook name(s) {bad}; the book's notebooks (book/_toc.yml) are: "
                        f"{', '.join(valid)}")
    return [n for n in valid if n in only]


def parameters_cell(nb) -> tuple:
    """(index, source) of the single ``parameters`` cell; :class:`BookError` otherwise."""
    cells = [(i, c) for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise BookError(f"expected exactly one code cell tagged 'parameters', found {len(cells)}")
    return cells[0][0], cells[0][1].source


def check_notebook(name: str):
    """Read ``notebooks/<name>.md`` and check its parameters cell assigns exactly :data:`PARAMS`
    (with defaults of valid types). Returns the notebook (nbformat node)."""
    import jupytext
    path = notebook_path(name)
    if not path.is_file():
        raise BookError(f"book/_toc.yml lists _exec/{name}, but {path} does not exist")
    nb = jupytext.read(path, fmt="md:myst")
    try:
        _, src = parameters_cell(nb)
    except BookError as e:
        raise BookError(f"{path}: {e}") from None
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        raise BookError(f"{path}: parameters cell does not parse: {e}") from None
    defaults = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                defaults[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                raise BookError(f"{path}: parameter {node.targets[0].id} must have a literal default "
                                f"(number, string, list, None)") from None
        elif not isinstance(node, ast.Expr):
            raise BookError(f"{path}: the parameters cell may only hold NAME = literal lines")
    missing = [k for k in PARAM_NAMES if k not in defaults]
    extra = [k for k in defaults if k not in PARAMS]
    if missing or extra:
        raise BookError(f"{path}: the parameters cell must assign exactly {', '.join(PARAM_NAMES)}; "
                        f"missing {missing}, not allowed {extra}")
    validate_params(defaults, f"{path} (defaults)")
    return nb


def execute(name: str, params: dict, *, out_dir: Path = EXEC, timeout: int = 900) -> dict:
    """Execute one notebook with papermill into ``out_dir/<name>.ipynb``; returns timing info."""
    import papermill
    nb = check_notebook(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.ipynb"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    t0 = time.time()
    try:
        # jupyter_client interrupts (SIGINT) every kernel before its shutdown request; ipykernel
        # then logs "ERROR | KeyboardInterrupt caught in kernel" when the signal lands while it
        # waits, for a notebook that finished fine. Its own log is silenced: a failing cell is
        # reported from the notebook's outputs (PapermillExecutionError below), not from that log.
        papermill.execute_notebook(nb, str(out), parameters=params, kernel_name="python3",
                                   execution_timeout=timeout, cwd=str(NOTEBOOKS), progress_bar=False,
                                   log_output=False, extra_arguments=KERNEL_ARGS)
    except papermill.PapermillExecutionError as e:
        raise BookError(f"notebook {name} failed in cell {e.exec_count or e.cell_index}: {e.ename}: "
                        f"{e.evalue}\n  executed copy with the traceback: {out}") from None
    except Exception as e:  # timeouts, dead kernels
        raise BookError(f"notebook {name} did not finish: {type(e).__name__}: {e}\n"
                        f"  partial executed copy: {out}") from None
    hide_parameter_cells(out)
    return {"name": name, "seconds": round(time.time() - t0, 2), "path": str(out)}


def hide_parameter_cells(path) -> None:
    """Tag the parameters cell and papermill's injected-parameters cell ``remove-cell``: they hold
    the builder's local paths, which no page shows."""
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, str(path))


def _order(names: Sequence[str], out_dir: Path) -> list:
    """``names`` longest first by the last build's ``timings.json`` (unknown ones first, in toc
    order), so that parallel workers finish together."""
    try:
        last = {t["name"]: t["seconds"] for t in json.loads((out_dir / "timings.json").read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        last = {}
    return sorted(names, key=lambda n: -last.get(n, float("inf")))


def _share_cores(threads: int) -> None:
    """In a worker of a parallel run: its kernels use ``threads`` CPU threads, so that the workers
    share the cores instead of each spinning on all of them (two kernels with every core each ran
    a page up to 5 times slower than alone)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def say(message: str) -> None:
    """The build's log: printed at once, also when stdout is a pipe (make, CI)."""
    print(message, flush=True)


def _execute_reporting(n: str, params: dict, out_dir: Path, timeout: int) -> dict:
    """:func:`execute` with a line when the notebook starts (from the process that runs it) and its
    real finish time (UTC, to the second) in its timing."""
    print(f"  start  {n}", flush=True)
    t = execute(n, params, out_dir=out_dir, timeout=timeout)
    t["finished"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return t


def default_jobs() -> int:
    """Notebooks run at once by default: 2 where the machine has 2 cores or more, else 1."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def run(params: str = "quick", only: Optional[Sequence[str]] = None, overrides: Optional[dict] = None,
        timeout: int = 900, out_dir: Path = EXEC, log=say, jobs: Optional[int] = None) -> list:
    """Execute the book's notebooks (all, or ``only``) with parameter set ``params``, ``jobs`` at a
    time (default :func:`default_jobs`; each notebook has its own kernel, so the pages do not share
    state; two pages that train the same run take turns on its folder's lock, see
    :func:`dirlib.paper.page_runs.train_runs`). Timings are listed in toc order."""
    names_all = toc_notebooks()
    names = check_names(only, names_all)
    pset = load_params(params)
    if overrides:
        pset["overrides"] = validate_params(overrides, "--set")
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise BookError(f"--jobs must be >= 1, got {jobs}")
    stray = sorted(p.stem for p in NOTEBOOKS.glob("*.md") if p.stem not in names_all)
    if stray:
        log(f"note: notebooks/{{{', '.join(stray)}}}.md not listed in book/_toc.yml: not executed")
    for n in names:  # check every notebook before spending time on any
        check_notebook(n)
    stage_docs()
    resolved = {n: resolve_params(pset, n) for n in names}
    done = {}

    def finished(n, t):
        p = resolved[n]
        t["status"] = "completed"
        t.setdefault("finished", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
        t["parameter_set"] = Path(pset["path"]).name
        t["jobs"] = jobs                     # notebooks running at once: times share the cores
        # the page's parameters as it ran, without the builder's local paths
        t["parameters"] = {k: (("set" if v else "unset") if k.endswith("_DIR") else v)
                           for k, v in p.items()}
        done[n] = t
        log(f"  done   {n}: {t['seconds']:.1f} s, finished {t['finished'][11:]} UTC "
            f"[{len(done)}/{len(names)}] -> {t['path']}")

    if jobs == 1 or len(names) == 1:
        for n in names:
            log(f"running {n} ({pset['path']}) ...")
            finished(n, _execute_reporting(n, resolved[n], out_dir, timeout))
    else:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        log(f"running {len(names)} notebooks ({pset['path']}), {jobs} at a time ...")
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_share_cores, initargs=(threads,)) as pool:
            futures = {pool.submit(_execute_reporting, n, resolved[n], out_dir, timeout): n
                       for n in _order(names, out_dir)}
            pending = set(futures)
            while pending:
                # each notebook is reported as it finishes (FIRST_EXCEPTION would wait for all)
                finished_now, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished_now:
                    if f.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise f.exception()
                    finished(futures[f], f.result())
    timings = [done[n] for n in names]
    if timings:
        slow = max(timings, key=lambda t: t["seconds"])
        log(f"{len(timings)} notebook(s), {sum(t['seconds'] for t in timings):.1f} s in all; slowest: "
            f"{slow['name']} ({slow['seconds']:.1f} s)")
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "timings.json"
        merged = timings
        if only and path.is_file():   # --only: merge into the last full run's timings
            try:
                old = {t["name"]: t for t in json.loads(path.read_text())}
            except (ValueError, KeyError, TypeError):
                old = {}
            old.update({t["name"]: t for t in timings})
            merged = [old[n] for n in names_all if n in old]
        path.write_text(json.dumps(merged, indent=1))
    return timings


# ----------------------------------------------------------------------------------- docs
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def _rewrite_links(text: str, src_dir: Path) -> str:
    """Relative links in a doc point at repository files the book does not contain: turn them into
    the link text plus the repository path in code font (absolute URLs and #anchors are kept)."""
    def sub(m):
        label, target = m.group(1), m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path_part = target.split("#")[0]
        try:
            rel = (src_dir / path_part).resolve().relative_to(ROOT)
        except ValueError:
            rel = Path(path_part)
        return f"{label} (`{rel.as_posix()}`)"
    return _LINK.sub(sub, text)


def docs_status() -> list:
    """[{"doc", "path", "present"}] for :data:`OPTIONAL_DOCS`, then any other ``docs/*.md``."""
    out = [{"doc": d, "path": f"docs/{d}", "present": (DOCS / d).is_file(), "included": True}
           for d in OPTIONAL_DOCS]
    if DOCS.is_dir():
        out += [{"doc": p.name, "path": f"docs/{p.name}", "present": True, "included": False}
                for p in sorted(DOCS.glob("*.md")) if p.name not in OPTIONAL_DOCS]
    return out


def stage_docs(dest: Path = EXEC / "docs") -> dict:
    """Copy :data:`OPTIONAL_DOCS` to ``dest`` for the pages' ``{include}`` directives (relative links
    rewritten); a missing doc gets a placeholder page saying so. Returns ``{doc: present}``."""
    dest.mkdir(parents=True, exist_ok=True)
    status = {}
    for d in OPTIONAL_DOCS:
        src = DOCS / d
        if src.is_file():
            text = _rewrite_links(src.read_text(), src.parent)
            status[d] = True
        else:
            title = d[:-3].replace("-", " ").capitalize()
            text = (f"# {title}\n\n```{{warning}}\n`docs/{d}` is not written yet: this section will show "
                    f"it once it exists (the book build includes it automatically).\n```\n")
            status[d] = False
        (dest / d).write_text(text)
    return status


def execution_rows(timings_path: Path = EXEC / "timings.json") -> list:
    """One row per notebook of the book: its parameter set, parameters, run time, status and when
    it finished, from the build's ``timings.json`` (a notebook without an entry: "not run")."""
    done = {}
    if timings_path.is_file():
        done = {t["name"]: t for t in json.loads(timings_path.read_text())}
    rows = []
    for n in toc_notebooks():
        t = done.get(n)
        if t is None:
            rows.append({"notebook": n, "status": "not run"})
            continue
        params = t.get("parameters") or {}
        # as code: Sphinx's smart quotes would print DEVICE=”cpu” in plain text
        shown = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in params.items()
                          if k in ("QUICK", "DATASET", "METHODS", "SEEDS", "EPOCHS", "DEVICE",
                                   "SOURCE", "DATA_DIR"))
        rows.append({"notebook": n, "status": t.get("status", "completed"),
                     "parameter set": t.get("parameter_set", "?"), "parameters": shown,
                     "run time (s)": f"{t['seconds']:.1f}", "finished (UTC)": t.get("finished", "?"),
                     "jobs": int(t.get("jobs", 1))})
    return rows


def write_execution_page(dest: Path = EXEC / "docs" / "execution.md") -> Path:
    """The book's execution status page (as QuantEcon's): every notebook with its parameters, run
    time and status in this build, generated from ``timings.json``."""
    rows = execution_rows()
    cols = ["notebook", "status", "parameter set", "parameters", "run time (s)", "finished (UTC)"]
    lines = ["# Execution status", "",
             "Every page of this book is a notebook executed by `python -m dirlib book run` with "
             "papermill, then rendered. This table is written by the build from its own timings "
             "(`book/_exec/timings.json`). `DATA_DIR=\"set\"` means the page found the real data; "
             "the pages that read stored records name them in their source boxes.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "\\|") for c in cols) + " |")
    total = sum(float(r["run time (s)"]) for r in rows if "run time (s)" in r)
    jobs = max((r.get("jobs", 1) for r in rows), default=1)
    lines += ["", f"{sum(r['status'] == 'completed' for r in rows)} of {len(rows)} notebooks "
              f"executed, {total:.0f} s in all"
              + (f" ({jobs} at a time, each on its share of the cores, so a page's time is longer "
                 "than it would be alone)." if jobs > 1 else ".")]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")
    return dest


# ----------------------------------------------------------------------------------- build
def vendored() -> bool:
    """Whether scripts/vendor_js.sh has filled book/_vendor in the layout _config.yml names."""
    return (VENDOR / ".vendored").is_file() and (VENDOR / "static").is_dir()


def _cdn_config() -> Path:
    """A copy of book/_config.yml without the vendored-JS settings (used when book/_vendor is absent)."""
    yaml = _yaml()
    cfg = yaml.safe_load((BOOK / "_config.yml").read_text())
    sph = cfg.get("sphinx", {}).get("config", {})
    for k in ("mathjax_path", "nb_ipywidgets_js"):
        sph.pop(k, None)
    sph["html_static_path"] = [p for p in sph.get("html_static_path", []) if not p.startswith("_vendor")]
    sph["html_extra_path"] = [p for p in sph.get("html_extra_path", []) if not p.startswith("_vendor")]
    EXEC.mkdir(parents=True, exist_ok=True)
    path = EXEC / "_config.cdn.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def jupyter_book_cmd() -> list:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if not found:
        raise BookError("jupyter-book not found: install the book extras (pip install -e '.[book]')")
    return [found]


def build(params: str = "quick", only: Optional[Sequence[str]] = None, run_first: bool = True,
          strict: bool = True, timeout: int = 900, log=say, jobs: Optional[int] = None) -> Path:
    """Run the notebooks (unless ``run_first`` is False), then build the HTML book. Returns the path
    of ``index.html``."""
    t0 = time.time()
    if run_first:
        run(params, only=only, timeout=timeout, log=log, jobs=jobs)
    missing = [n for n in toc_notebooks() if not (EXEC / f"{n}.ipynb").is_file()]
    if missing:
        raise BookError(f"no executed copy of {missing} in {EXEC}: run `python -m dirlib book run` first")
    staged = stage_docs()
    write_execution_page()
    for d, ok in staged.items():
        if not ok:
            log(f"note: docs/{d} does not exist yet: the book shows a placeholder")
    cmd = jupyter_book_cmd() + ["build", str(BOOK), "--all"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    if not vendored():
        log("WARNING: book/_vendor is missing (run scripts/vendor_js.sh): the pages will load MathJax "
            "and the widget manager from CDNs")
        cmd += ["--config", str(_cdn_config())]
    log("$ " + " ".join(cmd))
    t1 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    index = BOOK / "_build" / "html" / "index.html"
    if not index.is_file():
        raise BookError(f"jupyter-book reported success but {index} is missing")
    add_root_favicon(index)
    log(f"book built in {time.time() - t1:.1f} s (total {time.time() - t0:.1f} s): {index}")
    return index


def favicon_png(size: int = 32) -> bytes:
    """The book's favicon (``book/_css/favicon.svg``: a blue rounded square with a white rising
    line) drawn as a PNG, for the pages Sphinx does not write (the root redirect)."""
    import io
    from PIL import Image, ImageDraw
    k = size / 16
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, size - 1, size - 1], radius=3 * k, fill="#2a5d8f")
    d.line([(3 * k, 12 * k), (6 * k, 8 * k), (9 * k, 10 * k), (13 * k, 4 * k)], fill="white",
           width=max(1, round(1.6 * k)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def add_root_favicon(index: Path) -> None:
    """The root ``index.html`` is Jupyter Book's redirect, with no icon: browsers then ask for
    ``/favicon.ico`` and get a 404. Write ``favicon.ico`` beside it and link it."""
    import io
    from PIL import Image
    html = index.parent
    img = Image.open(io.BytesIO(favicon_png(32)))
    img.save(html / "favicon.ico", format="ICO", sizes=[(16, 16), (32, 32)])
    text = index.read_text()
    if 'rel="icon"' not in text:
        link = '<link rel="icon" href="favicon.ico">'
        # the redirect may be a bare <meta> line without a <head>
        index.write_text(text.replace("<head>", "<head>\n" + link, 1) if "<head>" in text
                         else link + "\n" + text)


# ----------------------------------------------------------------------------------- CLI
def _kv(items) -> dict:
    from ..cli_args import parse_kv
    try:
        return parse_kv(items)
    except Exception as e:   # argparse.ArgumentTypeError from the shared parser
        raise BookError(f"--set expects KEY=JSON: {e}") from None


def parameters_help() -> str:
    """For ``book run -h``: every parameter with what it takes, then each page's parameters cell
    (its defaults and what it does with each, as the notebook says)."""
    lines = ["parameters (--set KEY=JSON; a parameter set gives values for all pages):"]
    try:
        import jupytext
    except ImportError:       # the book extras are missing: the other commands say so
        return "\n".join(lines + [f"  {k:12s} {desc}" for k, (_, desc) in PARAMS.items()]
                         + ["", "(each page's parameters: pip install -e '.[book]')"])
    lines += [f"  {k:12s} {desc}" for k, (_, desc) in PARAMS.items()]
    lines += ["", "each page's parameters cell (its defaults and how it uses them):"]
    try:
        names = toc_notebooks()
    except BookError as e:     # no PyYAML: the command itself reports it
        return "\n".join(lines + [f"  ({e})"])
    for n in names:
        try:
            cells = jupytext.read(notebook_path(n)).cells
        except (OSError, ValueError):
            continue
        cell = next((c for c in cells if "parameters" in c.metadata.get("tags", [])), None)
        if cell is None:
            continue
        lines.append(f"  {n}:")
        lines += [f"    {ln}" for ln in cell.source.splitlines() if ln.strip()]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib book", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the notebooks book/_toc.yml lists")
    for name in ("run", "build"):
        s = sub.add_parser(name, help="execute the notebooks" if name == "run"
                           else "execute the notebooks (quick) and build book/_build/html",
                           epilog=parameters_help() if name == "run" else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("--params", default="quick", help="quick | full | path to a JSON file")
        s.add_argument("--only", nargs="+", metavar="NAME", help="only these notebooks")
        s.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
        s.add_argument("--jobs", type=int, default=None,
                       help=f"notebooks run at once (default {default_jobs()} here: 2 with 2 cores or more)")
        if name == "run":
            s.add_argument("--set", nargs="+", metavar="KEY=JSON", help="override parameters")
        else:
            s.add_argument("--no-run", action="store_true", help="build from the existing executed copies")
            s.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    a = p.parse_args(argv)
    try:
        if a.cmd == "list":
            for n in toc_notebooks():
                print(f"{n:32s} {notebook_path(n).relative_to(ROOT)}")
        elif a.cmd == "run":
            run(a.params, only=a.only, overrides=_kv(a.set), timeout=a.timeout, jobs=a.jobs)
        else:
            build(a.params, only=a.only, run_first=not a.no_run, strict=not a.no_strict,
                  timeout=a.timeout, jobs=a.jobs)
    except BookError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
