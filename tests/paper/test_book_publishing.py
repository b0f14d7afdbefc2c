"""The published companion: the Pages workflow is a valid GitHub workflow that builds with the
README's command, and environment.yml describes the same environment as pyproject.toml."""
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _lint(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("check-jsonschema") or str(Path(__import__("sys").executable).parent
                                                   / "check-jsonschema")
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    return subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True)


def test_the_pages_workflow_is_valid_and_builds_with_make_book():
    r = _lint(WORKFLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    text = WORKFLOW.read_text()
    assert "run: make book" in text and "path: book/_build/html" in text
    assert "actions/deploy-pages" in text and "pages: write" in text
    # the first deploy needs no settings by hand; torch comes as CPU-only wheels, pinned as in
    # pyproject.toml, into the venv make book then uses
    assert "actions/configure-pages" in text and "enablement: true" in text
    pins = re.findall(r'"(torch(?:vision)?==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    cpu = next(ln for ln in text.splitlines() if "whl/cpu" in ln)
    assert pins and all(p in cpu for p in pins) and ".venv/bin/python -m pip" in cpu
    assert text.index("whl/cpu") < text.index("run: make book")


def test_the_workflow_lint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu"))
    assert _lint(broken).returncode != 0


def _names(reqs) -> set:
    return {re.split(r"[<>=!~\[ ;]", r.strip(), maxsplit=1)[0].lower().replace("_", "-")
            for r in reqs if r.strip()}


@pytest.mark.artefacts
def test_environment_yml_lists_what_pyproject_does():
    import yaml
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = _names(project["dependencies"])
    for extra in ("test", "book", "ray", "slurm"):
        want |= _names(project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            have |= _names(d for d in dep["pip"] if not d.startswith("-e"))
        elif not dep.startswith(("python", "pip")) or dep.startswith("pip "):
            have |= _names([dep])
    assert want - have == set(), f"environment.yml lacks {sorted(want - have)}"
    assert have - want == set(), f"environment.yml has packages pyproject.toml does not: {sorted(have - want)}"


def test_the_execution_status_page_lists_every_notebook_from_the_timings(tmp_path, monkeypatch):
    import json
    from dirlib.paper import book as B
    names = B.toc_notebooks()
    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps([{"name": names[0], "seconds": 12.5, "status": "completed",
                                    "parameter_set": "quick.json", "finished": "2026-12-03 10:00",
                                    "parameters": {"QUICK": True, "DATA_DIR": "set"}}]))
    monkeypatch.setattr(B, "EXEC", tmp_path)
    rows = B.execution_rows(timings)
    assert [r["notebook"] for r in rows] == names
    assert rows[0]["run time (s)"] == "12.5" and 'DATA_DIR="set"' in rows[0]["parameters"]
    assert all(r["status"] == "not run" for r in rows[1:])
    assert "docs/execution" not in names          # the page itself is generated, not a notebook
