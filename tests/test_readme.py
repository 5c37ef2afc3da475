"""The docs' promises that can drift from the code: the README's two opening commands, its
quickstart run as written, and every command in README.md and docs/ parsed against the real CLI.
Blocks are found by what they hold, never by a heading's words, so the prose can change freely."""

import functools
import re
import shlex
import subprocess
import sys
import tomllib

import pretraining
import pytest
import yaml

from conftest import ROOT, sh
from lstm_textgen.cli import COMMANDS

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def command_lines(block: str) -> list[str]:
    """A bash block's commands: continuation lines joined, comments dropped."""
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        line = "" if line.lstrip().startswith("#") else line.split("  #")[0].strip()
        if line:
            lines.append(line)
    return lines


def opening_commands() -> list[str]:
    """The commands of the README's first two bash blocks, each block as one line."""
    return [" ".join(command_lines(b)) for b in blocks(README, "bash")[:2]]


def block_with(*needles: str) -> list[str]:
    """The commands of the README's first bash block that holds all of `needles`."""
    return command_lines(next(b for b in blocks(README, "bash") if all(n in b for n in needles)))


def test_the_readme_opens_with_the_pipeline_and_the_test_commands():
    run_pipeline, run_tests = opening_commands()
    assert run_pipeline.endswith("&& dvc repro")
    assert "pip install -c requirements.lock -e . " in run_pipeline  # no test extras for a user
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert run_tests == ci  # CI runs exactly what the README tells a person to run
    assert "'.[test]'" in run_tests and run_tests.endswith("python -m pytest")


def test_the_readme_is_a_front_page_that_links_every_guide():
    assert len(README.splitlines()) <= 150
    for guide in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{guide.name})" in README, guide.name


def test_the_stage_reference_names_every_stage_and_param():
    reference = DOCS["docs/pipeline.md"]
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage in dvc["stages"]:
        assert f"`{stage}`" in reference and stage in README, stage
    for section, values in params.items():
        for key in values:
            assert f"`{key}`" in reference, f"{section}.{key}"


def test_the_layout_picture_names_every_stage_and_output():
    """Each stage and output in dvc.yaml appears in docs/layout.md's picture of the data flow
    (by its file or folder name)."""
    picture = next(b for b in blocks(DOCS["docs/layout.md"], "") if "download-gutenberg" in b)
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        assert name in picture, name
        for out in stage["outs"]:
            path = next(iter(out)) if isinstance(out, dict) else out
            stem = path.rstrip("/").split("/")[-1].split(".")[0]
            assert stem in picture, (name, path)


def test_the_quickstart_works_as_written(reproduced_project, tmp_path):
    """The README's tiny run, the way back to the committed params, and the default run's
    commands, on the tiny project (reproduced already: its first `dvc repro` is
    tests/test_pipeline.py's to check)."""
    repo, env = reproduced_project(tmp_path / "repo")
    committed = (repo / "params.yaml").read_text()
    tiny_run = block_with("dvc exp run", "lstm-textgen generate")
    for command in tiny_run:
        proc = sh(["bash", "-c", command], repo, env)
        assert proc.returncode == 0, command
        if command.startswith("dvc exp run"):
            assert "next: lstm-textgen generate" in proc.stderr + proc.stdout  # the sample stage says what to run
    # what the README says of the tiny run: its params are now the workspace's
    assert yaml.safe_load((repo / "params.yaml").read_text())["train-lstm"]["units"] == 64
    assert "up to date" in sh(["dvc", "repro"], repo, env).stdout
    for command in block_with("git checkout params.yaml"):
        assert sh(["bash", "-c", command], repo, env).returncode == 0, command
    assert (repo / "params.yaml").read_text() == committed
    assert "Running stage 'train-lstm'" not in sh(["dvc", "repro"], repo, env).stdout  # back where it was
    for command in block_with("dvc params diff", "lstm-textgen audit"):
        assert sh(["bash", "-c", command], repo, env).returncode == 0, command


def test_the_fine_tuning_recipe_is_the_one_the_pretraining_benchmark_measured():
    """docs/own-text.md's base and fine-tuning params are what benchmarks/pretraining.py ran to
    get the figures quoted for them (BASE, SHELF_BOOKS, FINE_TUNE)."""
    base, tuned = [yaml.safe_load(b) for b in blocks(DOCS["docs/own-text.md"], "yaml") if "train-lstm:" in b][:2]
    assert base["download-gutenberg"]["book_ids"] == pretraining.SHELF_BOOKS
    for stage, values in pretraining.BASE.items():
        assert {key: base[stage][key] for key in values} == values, stage
    assert {key: tuned["train-lstm"][key] for key in pretraining.FINE_TUNE["train-lstm"]} == \
        pretraining.FINE_TUNE["train-lstm"]


# --- every command in the docs, parsed against the real CLI ---------------------------------

def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at &&, ||, ;, |), as words; environment
    assignments in front dropped."""
    words = shlex.split(line, comments=True)
    commands, current = [], []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    return [[w for i, w in enumerate(c) if not (re.match(r"^[A-Z_]+=", w) and all("=" in x for x in c[:i]))]
            for c in commands if c]


def documented_commands() -> list[tuple[str, list[str]]]:
    return [(doc, words) for doc, text in DOCS.items() for block in blocks(text, "bash")
            for line in command_lines(block) for words in simple_commands(line)]


def flags(words: list[str]) -> set[str]:
    return {w.split("=")[0] for w in words if w.startswith("--")} | {w for w in words if re.fullmatch(r"-[a-zA-Z]", w)}


@functools.cache
def help_text(*command: str) -> str:
    proc = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout + proc.stderr if proc.returncode == 0 else ""


def dvc_help(words: list[str]) -> str:
    """`dvc SUB [SUBSUB] --help`: the longest prefix of subcommands DVC knows."""
    subs = [w for w in words[1:3] if re.fullmatch(r"[a-z-]+", w)]
    for n in range(len(subs), 0, -1):
        text = help_text(sys.executable, "-m", "dvc", *subs[:n])
        if text:
            return text
    return ""


def command_problems(words: list[str], extras: set[str]) -> list[str] | None:
    """What is wrong with one documented command, checked against the real CLI: `lstm-textgen`
    commands and flags, `dvc` subcommands and flags, the scripts `python` runs (and their flags),
    the files and extras `pip` installs. None: not a command this checks."""
    if words[0] == "lstm-textgen":
        if len(words) == 1 or words[1] in ("--help", "-h"):
            return []
        if words[1] not in COMMANDS:
            return [f"no command {words[1]}"]
        text = help_text(sys.executable, "-m", "lstm_textgen", words[1])
        return [f"{f} is not a flag" for f in sorted(flags(words) - {"-h"}) if f not in text]
    if words[0] == "dvc":
        text = dvc_help(words)
        return ([] if text else ["dvc knows no such command"]) + [f"{f} is not a flag" for f in sorted(flags(words))
                                                                  if f not in text]
    if words[0] in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
        script = ROOT / words[1]
        if not script.is_file():
            return [f"no file {words[1]}"]
        source = script.read_text(encoding="utf-8")
        return [f"{f} is not a flag of {words[1]}" for f in sorted(flags(words) - {"-h", "--help"})
                if f'"{f}"' not in source]
    if words[:2] in (["pip", "install"], ["uv", "pip"]):
        problems = [f"no file {w}" for w in words if w.endswith((".lock", ".txt", ".toml")) and not (ROOT / w).is_file()]
        for extra in (e for w in words for group in re.findall(r"^\.\[([\w,]+)\]$", w) for e in group.split(",")):
            problems += [] if extra in extras else [f"no extra {extra}"]
        return problems
    return None


def test_every_command_in_the_docs_parses_against_the_real_cli():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    problems, checked = [], 0
    for doc, words in documented_commands():
        found = command_problems(words, extras)
        if found is not None:
            checked += 1
            problems += [f"{doc}: {' '.join(words)}: {p}" for p in found]
    assert checked > 40  # the walk found the docs' commands
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command, problem", [
    ("lstm-textgen generate --no-such-flag x", "--no-such-flag is not a flag"),
    ("lstm-textgen make-coffee", "no command make-coffee"),
    ("dvc exp run --no-such-flag", "--no-such-flag is not a flag"),
    ("dvc make-coffee now", "dvc knows no such command"),
    ("python benchmarks/nowhere.py", "no file benchmarks/nowhere.py"),
    ("python benchmarks/run.py --no-such-flag", "--no-such-flag is not a flag of benchmarks/run.py"),
    ("pip install -c requirements.nowhere -e '.[test]'", None),
    ("pip install -c requirements.lock -e '.[coffee]'", "no extra coffee"),
])
def test_the_docs_check_reports_what_does_not_exist(command, problem):
    """The check above can fail: each kind of mistake is reported (and a right command is not)."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    words, = simple_commands(command)
    found = command_problems(words, extras)
    assert found == ([problem] if problem else [])
    assert command_problems(["lstm-textgen", "generate", "--top-k", "3"], extras) == []
    assert simple_commands("FOO=1 dvc repro && lstm-textgen generate 'a b'") == [
        ["dvc", "repro"], ["lstm-textgen", "generate", "a b"]]
