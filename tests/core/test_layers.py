"""The house's one rule: three packages, one way down. The core library (``dirlib`` itself)
imports neither ``dirlib.tools`` nor ``dirlib.paper``; the tools never import the paper's
companion. ``dirlib.cli`` and ``dirlib.__main__`` (the command line) sit above all three."""
import ast
from pathlib import Path

import dirlib

ROOT = Path(dirlib.__file__).parent
ENTRY = {"cli", "__main__"}


def layer(parts) -> str:
    if parts[0] in ("paper", "tools"):
        return parts[0]
    return "entry" if parts[0] in ENTRY else "core"


def imported(path: Path):
    """``(line, dirlib-relative module parts)`` of every import in ``path``, at any depth."""
    pkg = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        pkg = list(path.relative_to(ROOT).parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                mod = base + (node.module.split(".") if node.module else [])
                for alias in node.names:
                    yield node.lineno, mod + ([alias.name] if not node.module else [])
            elif node.module and node.module.split(".")[0] == "dirlib":
                yield node.lineno, node.module.split(".")[1:] or [a.name for a in node.names][:1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dirlib":
                    yield node.lineno, alias.name.split(".")[1:]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and str(node.args[0].value).startswith("dirlib.")):
            yield node.lineno, str(node.args[0].value).split(".")[1:]


ALLOWED = {"core": {"core"}, "tools": {"core", "tools"}, "paper": {"core", "tools", "paper"},
           "entry": {"core", "tools", "paper", "entry"}}


def test_each_layer_imports_only_the_layers_below_it():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts == ("__init__",):
            continue      # dirlib.__getattr__ names the packages lazily, by string
        src = layer(parts)
        for line, mod in imported(path):
            if mod and layer(mod) not in ALLOWED[src]:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} ({src}) imports dirlib.{'.'.join(mod)}")
    assert not bad, "\n".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    # the check itself must be able to fail: a core module that imports the paper's companion
    import sys
    fake = tmp_path / "dirlib"
    fake.mkdir()
    (fake / "train.py").write_text("def f():\n    from .paper import audit\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    lines = list(imported(fake / "train.py"))
    assert lines == [(2, ["paper"])]
    assert layer(lines[0][1]) not in ALLOWED[layer(("train",))]
