"""Each stage depends on exactly the code it runs: the project modules its script imports,
directly or through another module, are the ones dvc.yaml lists, so an edit to one module
reruns only the stages that run it."""

import ast
import re

import yaml

from conftest import ROOT, sh

PACKAGE = "lstm_textgen"


def modules_imported(path: str) -> set[str]:
    """The package modules that the file at `path` imports itself, at any place in it, as paths
    from the root: `import lstm_textgen.x`, `from lstm_textgen.x import …`, `from lstm_textgen import x`."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(f"{PACKAGE}.")}
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found |= {f"{PACKAGE}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{PACKAGE}."):
            found.add(node.module)
    return {name.replace(".", "/") + ".py" for name in found}


def project_imports(script: str) -> set[str]:
    """`script` and every module of the package it imports, at any depth, as paths from the root."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += [m for m in modules_imported(path) if (ROOT / m).is_file()]
    return seen


def stage_script(cmd: str) -> str:
    return re.match(r"python -m stages\.(\w+)", cmd).group(1).join(["stages/", ".py"])


def test_every_stage_lists_exactly_the_code_it_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        listed = {d for d in stage["deps"] if d.endswith(".py")}
        assert listed == project_imports(stage_script(stage["cmd"])), name


def test_the_import_walk_follows_modules_that_import_modules():
    assert "lstm_textgen/errors.py" in project_imports("lstm_textgen/params.py")  # params → errors
    assert project_imports("stages/window.py") >= {"lstm_textgen/errors.py", "lstm_textgen/files.py",
                                                   "lstm_textgen/params.py", "lstm_textgen/windows.py"}
    assert "lstm_textgen/model.py" not in project_imports("stages/sample.py")  # sampling needs no TensorFlow
    # train-lstm imports the model inside functions, after its checks: still a dependency
    assert "lstm_textgen/model.py" in project_imports("stages/train_lstm.py")


def test_the_package_init_holds_no_code():
    """No stage lists lstm_textgen/__init__.py, which every import of the package runs: it must
    stay a docstring, so that editing it cannot change what a stage does."""
    tree = ast.parse((ROOT / "lstm_textgen/__init__.py").read_text(encoding="utf-8"))
    assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in tree.body)


def status_of(repo, env) -> set[str]:
    out = sh(["dvc", "status", "--json"], repo, env).stdout
    return set(yaml.safe_load(out) or {})


def test_editing_a_module_makes_only_the_stages_that_run_it_stale(reproduced_project, tmp_path):
    repo, env = reproduced_project(tmp_path / "repo")
    assert status_of(repo, env) == set()
    original = (repo / "lstm_textgen/sampling.py").read_text()
    (repo / "lstm_textgen/sampling.py").write_text(original + "\n# an edit\n")
    assert status_of(repo, env) == {"sample", "sample-headlines"}
    (repo / "lstm_textgen/sampling.py").write_text(original)
    assert status_of(repo, env) == set()
    (repo / "lstm_textgen/download.py").write_text((repo / "lstm_textgen/download.py").read_text() + "\n# an edit\n")
    assert status_of(repo, env) == {"download-gutenberg", "tokenize-headlines"}
    # ... and repro reruns those and what follows them only where their outputs changed
    ran = re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], repo, env).stdout)
    assert ran[:1] == ["download-gutenberg"] and "tokenize-headlines" in ran
