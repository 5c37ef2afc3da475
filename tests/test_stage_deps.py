"""Each stage depends on exactly the code it runs: the project modules its script imports,
directly or through another module, are the ones dvc.yaml lists, so an edit to one module
reruns only the stages that run it."""

import ast
import re

import yaml

from conftest import ROOT, sh

STAGES_DIR = ROOT / "stages"


def project_imports(script: str) -> set[str]:
    """`script` and every module of stages/ it imports, at any depth, as paths from the root."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            todo += [f"stages/{n}.py" for n in names if (STAGES_DIR / f"{n}.py").is_file()]
    return seen


def stage_script(cmd: str) -> str:
    return re.match(r"python (stages/\S+\.py)", cmd).group(1)


def test_every_stage_lists_exactly_the_code_it_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        listed = {d for d in stage["deps"] if d.endswith(".py")}
        assert listed == project_imports(stage_script(stage["cmd"])), name


def test_the_import_walk_follows_modules_that_import_modules():
    assert "stages/errors.py" in project_imports("stages/params.py")  # params → errors
    assert project_imports("stages/window.py") >= {"stages/errors.py", "stages/files.py", "stages/params.py"}
    assert "stages/lstm.py" not in project_imports("stages/sample.py")  # sampling needs no TensorFlow


def status_of(repo, env) -> set[str]:
    out = sh(["dvc", "status", "--json"], repo, env).stdout
    return set(yaml.safe_load(out) or {})


def test_editing_a_module_makes_only_the_stages_that_run_it_stale(reproduced_project, tmp_path):
    repo, env = reproduced_project(tmp_path / "repo")
    assert status_of(repo, env) == set()
    original = (repo / "stages/sampling.py").read_text()
    (repo / "stages/sampling.py").write_text(original + "\n# an edit\n")
    assert status_of(repo, env) == {"sample", "sample-headlines"}
    (repo / "stages/sampling.py").write_text(original)
    assert status_of(repo, env) == set()
    (repo / "stages/download.py").write_text((repo / "stages/download.py").read_text() + "\n# an edit\n")
    assert status_of(repo, env) == {"download-gutenberg", "tokenize-headlines"}
    # ... and repro reruns those and what follows them only where their outputs changed
    ran = re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], repo, env).stdout)
    assert ran[:1] == ["download-gutenberg"] and "tokenize-headlines" in ran
