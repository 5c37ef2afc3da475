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


def test_every_command_in_the_docs_parses_against_the_real_cli():
    """`lstm-textgen` commands and flags, `dvc` subcommands and flags, the scripts that `python`
    runs (and their flags), and the files and extras `pip` installs, all exist."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    problems, checked = [], 0
    for doc, words in documented_commands():
        where = f"{doc}: {' '.join(words)}"
        if words[0] == "lstm-textgen":
            checked += 1
            if len(words) > 1 and words[1] not in ("--help", "-h"):
                if words[1] not in COMMANDS:
                    problems.append(f"{where}: no command {words[1]}")
                    continue
                text = help_text(sys.executable, "-m", "lstm_textgen", words[1])
                problems += [f"{where}: {f} is not a flag" for f in flags(words) - {"-h"} if f not in text]
        elif words[0] == "dvc":
            checked += 1
            text = dvc_help(words)
            if not text:
                problems.append(f"{where}: dvc knows no such command")
            problems += [f"{where}: {f} is not a flag" for f in flags(words) if f not in text]
        elif words[0] in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
            checked += 1
            script = ROOT / words[1]
            if not script.is_file():
                problems.append(f"{where}: no file {words[1]}")
                continue
            source = script.read_text(encoding="utf-8")
            problems += [f"{where}: {f} is not a flag of {words[1]}" for f in flags(words) - {"-h", "--help"}
                         if f'"{f}"' not in source]
        elif words[:2] in (["pip", "install"], ["uv", "pip"]):
            checked += 1
            for w in words:
                if w.endswith((".lock", ".txt", ".toml")) and not (ROOT / w).is_file():
                    problems.append(f"{where}: no file {w}")
                for extra in re.findall(r"^\.\[([\w,]+)\]$", w):
                    problems += [f"{where}: no extra {e}" for e in extra.split(",") if e not in extras]
    assert checked > 40  # the walk found the docs' commands
    assert not problems, "\n".join(problems)


def test_the_docs_check_catches_a_wrong_flag():
    """The check above can fail: a flag no command has is reported."""
    assert "--no-such-flag" not in help_text(sys.executable, "-m", "lstm_textgen", "generate")
    assert "--queue" in dvc_help(["dvc", "exp", "run"]) and "--no-such-flag" not in dvc_help(["dvc", "exp", "run"])
    assert simple_commands("FOO=1 dvc repro && lstm-textgen generate 'a b'") == [
        ["dvc", "repro"], ["lstm-textgen", "generate", "a b"]]
