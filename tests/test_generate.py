"""`lstm-textgen generate`: a real tiny model in a temporary DVC repo, read from the
workspace, an experiment, a git tag, and a second clone that has only git and a DVC remote."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from conftest import sh
from lstm_textgen.errors import UserError
from test_pipeline import repro, set_param


def generate_cmd(repo, env, *args, check=True, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "lstm_textgen", "generate", *args], cwd=repo, env=env, input=stdin,
                          capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(f"generate {' '.join(args)} exited {proc.returncode}\n{proc.stderr}")
    return proc


def as_json(repo, env, *args):
    return json.loads(generate_cmd(repo, env, *args, "--json").stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory, reproduced_project):
    """The tiny project trained, committed and tagged v1 (units 16), pushed to a local DVC
    remote; then an experiment `wide` (units 24); then the workspace moved on (units 12)."""
    base = tmp_path_factory.mktemp("generate")
    repo, env = reproduced_project(base / "repo")
    sh(["dvc", "remote", "add", "-d", "shared", str(base / "remote")], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "trained"], repo, env)
    sh(["git", "tag", "v1"], repo, env)
    sh(["dvc", "push"], repo, env)
    v1 = as_json(repo, env, "--seed", "3", "--length", "30", "alice")
    sh(["dvc", "exp", "run", "-n", "wide", "-S", "train-lstm.units=24"], repo, env)
    set_param(repo, "train-lstm", "units", 12)
    repro(repo, env)
    return repo, env, base, v1


def units(report):
    return report["provenance"]["stages"]["train-lstm"]["params"]["train-lstm.units"]


def test_generates_from_the_workspace_with_a_prompt_cleaned_like_the_corpus(project):
    repo, env, _, _ = project
    out = generate_cmd(repo, env, "Alice Said", "--length", "25", "--seed", "1").stdout
    assert out.startswith("alice said") and len(out.rstrip("\n")) == len("alice said") + 25
    assert out == generate_cmd(repo, env, "Alice Said", "--length", "25", "--seed", "1").stdout  # seeded
    two = generate_cmd(repo, env, "alice", "--length", "25", "--num", "2", "--seed", "1").stdout.split("\n\n")
    assert len(two) == 2 and all(t.startswith("alice") for t in two)


def test_reads_a_tag_an_experiment_and_the_workspace_each_as_it_was(project):
    repo, env, _, v1 = project
    workspace = {p: (repo / p).read_bytes() for p in ("params.yaml", "dvc.lock", "data/models/char.npz")}
    assert units(as_json(repo, env, "--seed", "3", "--length", "30", "alice")) == 12  # the workspace now
    wide = as_json(repo, env, "--rev", "wide", "--seed", "3", "--length", "30", "alice")
    assert units(wide) == 24 and wide["provenance"]["code_version"]["experiment"] == "wide"
    tagged = as_json(repo, env, "--rev", "v1", "--seed", "3", "--length", "30", "alice")
    assert units(tagged) == 16 and tagged["texts"] == v1["texts"]  # the same model, the same text
    assert {p: (repo / p).read_bytes() for p in workspace} == workspace  # no checkout: the workspace untouched


def test_without_a_prompt_each_revision_starts_from_the_same_window_of_its_validation_text(project):
    """No prompt: the seed is a window of the validation text, read from the workspace's file or,
    at a revision, from DVC's copy (the text is the same in all three here)."""
    repo, env, _, _ = project
    texts = [generate_cmd(repo, env, "--seed", "4", "--length", "20").stdout.rstrip("\n")]
    val = repo / "data/windows/val.npy"
    val.rename(repo / "val.npy.aside")  # at a revision, the text must come from DVC's copy, not the workspace
    try:
        texts += [generate_cmd(repo, env, "--rev", rev, "--seed", "4", "--length", "20").stdout.rstrip("\n")
                  for rev in ("wide", "v1")]
    finally:
        (repo / "val.npy.aside").rename(val)
    assert all(len(t) == 120 for t in texts) and len({t[:100] for t in texts}) == 1  # 100 characters of seed
    corpus = (repo / "data/clean/corpus.txt").read_text(encoding="utf-8")
    assert texts[0][:100] in corpus[-len(corpus) // 10 - 100:]  # a window of the held-out tail


def test_a_second_clone_with_only_git_and_the_remote_generates_the_same_text(project, tmp_path):
    repo, env, _, v1 = project
    clone = tmp_path / "teammate"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "data/models/char.npz").exists() and not (clone / ".dvc/cache").exists()
    shared = as_json(repo, env, "--repo", str(clone), "--seed", "3", "--length", "30", "alice")
    assert shared["texts"] == v1["texts"] and units(shared) == 16
    assert shared["provenance"]["code_version"]["repo"] == str(clone)


def test_json_provenance_is_what_audit_says_of_the_model(project):
    repo, env, _, _ = project
    for rev in ([], ["--rev", "wide"]):
        report = as_json(repo, env, *rev, "--seed", "1", "--length", "10", "alice")
        audit = json.loads(sh([sys.executable, "-m", "lstm_textgen", "audit", "data/models/char.npz", *rev, "--json"],
                              repo, env).stdout)
        assert report["provenance"] == audit
        assert audit["stage"] == "train-lstm" and len(audit["sha256"]) == 64
        assert "encode-vocab" in audit["stages"] and "best_val_loss" in audit["model_score"]


def test_interactive_mode_answers_each_line_over_a_pipe(project):
    repo, env, _, _ = project
    out = generate_cmd(repo, env, "--interactive", "--length", "15", "--seed", "2",
                       stdin="alice\nthe queen\n\u00a7 nope\nhatter\n")
    answers = [a for a in out.stdout.split("\n\n") if a.strip()]
    assert [a[:5] for a in answers] == ["alice", "the q", "hatte"]
    assert "'\u00a7'" in out.stderr  # a bad line is named and skipped, the loop goes on
    assert generate_cmd(repo, env, "-", "--length", "5", stdin="the cat\n").stdout.startswith("the cat")


def test_the_same_seed_and_params_give_the_sample_stages_text(project, monkeypatch):
    from lstm_textgen import generate
    repo, _, _, _ = project
    monkeypatch.chdir(repo)
    samples = (repo / "metrics/sample/char/samples.txt").read_text()
    generated = [part.split("\n\n=== sample")[0].rstrip("\n") for part in samples.split("generated:\n")[1:]]
    seeds = [part.split("\ngenerated:")[0] for part in samples.split("):\n")[1:]]
    texts = generate.generate(seed=7, num=2, length=40, seed_length=10, temperature=0.8)  # TINY's sample params
    assert texts == [s + g for s, g in zip(seeds, generated)]


def test_headlines_stop_at_the_end_and_never_show_unknown_or_padding(project, monkeypatch):
    from lstm_textgen import generate
    repo, env, _, _ = project
    monkeypatch.chdir(repo)
    texts = generate.generate("The Queen", branch="headlines", num=20, length=8, seed=0, temperature=2.0)
    assert all(t.startswith("the queen") for t in texts)
    assert all(len(t.split()) <= 2 + 8 for t in texts)
    assert not any(w in ("<unk>", "<pad>", "<end>") for t in texts for w in t.split())


@pytest.mark.parametrize("args, message", [
    (["--branch", "nope"], "unknown branch 'nope'; known: char, headlines"),
    (["--rev", "no-such-rev"], "'no-such-rev' is neither a git revision nor an experiment name"),
    (["--rev", "HEAD~1"], "no model data/models/char.npz at HEAD~1"),
    (["--temperature", "0"], "--temperature 0.0 must be > 0"),
    (["--top-k", "0"], "--top-k 0 must be a whole number >= 1"),
    (["--top-p", "1.5"], "--top-p 1.5 must be > 0 and <= 1"),
    (["--top-p", "0"], "--top-p 0.0 must be > 0 and <= 1"),
    (["--length", "0"], "--length 0 must be a whole number >= 1"),
    (["--seed", "-1"], "--seed -1 must be a whole number >= 0"),
    (["\u00a7alice"], "the prompt has characters the model never saw in its training text (after it was "
                      "lowercased, as the training text was): '\u00a7'"),
    (["--branch", "headlines", "zebra xylophone"], "words the model never saw in training"),
])
def test_bad_input_is_one_clear_message_and_exit_code_1(project, args, message):
    repo, env, _, _ = project
    proc = generate_cmd(repo, env, *args, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_clone_whose_remote_lacks_the_model_is_refused(project, tmp_path):
    repo, env, base, _ = project
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    (tmp_path / "empty").mkdir()
    sh(["dvc", "remote", "add", "-d", "--local", "empty", str(tmp_path / "empty")], clone, env)
    proc = generate_cmd(repo, env, "--repo", str(clone), "alice", check=False)
    assert proc.returncode == 1 and "neither in the local cache nor on the DVC remote" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_each_unusable_repo_gets_its_own_message(project, tmp_path):
    """--repo: a path that does not exist, a --rev it does not have (`master` where the branch is
    `main`), and a clone with no DVC remote are each told apart from a remote that lacks the model."""
    repo, env, _, _ = project
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    branch = sh(["git", "branch", "--show-current"], clone, env).stdout.strip()
    sh(["dvc", "remote", "remove", "shared"], clone, env)  # committed with the project: this clone has none
    other = "main" if branch == "master" else "master"
    for args, message in [
        (["--repo", str(tmp_path / "nowhere")], f"--repo {tmp_path / 'nowhere'}: no such folder"),
        (["--repo", str(tmp_path)], f"--repo {tmp_path} is not a git repository"),
        (["--repo", str(clone), "--rev", other], f"--rev {other} is no commit, branch or tag of {clone} "
                                                 f"(its branches: {branch})"),
        (["--repo", str(clone)], "that clone has no DVC remote to fetch it from"),
    ]:
        for command in (["generate", *args, "alice"], ["audit", "data/models/char.npz", *args]):
            proc = subprocess.run([sys.executable, "-m", "lstm_textgen", *command], cwd=repo, env=env,
                                  capture_output=True, text=True)
            assert proc.returncode == 1 and message in proc.stderr, (command, proc.stderr)
            assert "neither in the local cache nor on the DVC remote" not in proc.stderr


def test_no_model_in_the_workspace_says_how_to_get_one(tmp_path, monkeypatch):
    from lstm_textgen import generate
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"no model data/models/char.npz in the workspace; run `dvc repro "
                                        r"train-lstm`, or `dvc pull`"):
        generate.generate("a")


def test_every_generate_command_of_the_readme_and_the_guide_runs(project):
    """The `lstm-textgen generate` commands of README.md and docs/generating.md, and the guide's
    Python example, as written, on the tiny project."""
    from conftest import ROOT
    repo, env, _, _ = project
    commands, python = [], []
    for doc in ("README.md", "docs/generating.md"):
        text = (ROOT / doc).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
            commands += [line.split("  #")[0].strip() for line in block.splitlines()
                         if line.startswith("lstm-textgen generate") and "--rev" not in line and "--repo" not in line]
        python += [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "lstm_textgen.generate" in b]
    assert len(commands) >= 4 and python
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=repo, env=env, input="alice\n", capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.strip(), f"{command}\n{proc.stderr}"
    proc = subprocess.run([sys.executable, "-c", python[0] + "\nassert len(texts) == 2 and texts[0].startswith('alice was')"],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("cc, why", [("", "$CC is empty"), ("/no/such/cc", "there is no C compiler `/no/such/cc`"),
                                     ("true", "`true` wrote no library"),
                                     ("python3 -c \"import sys; open(sys.argv[sys.argv.index('-o') + 1], 'w').write('junk')\"",
                                      "does not load")], ids=["empty", "missing", "writes nothing", "writes junk"])
def test_without_a_c_compiler_the_numpy_step_writes_the_same_text_and_says_so_once(project, cc, why):
    repo, env, _, _ = project
    args = ("--seed", "5", "--length", "80", "--num", "3", "alice")
    with_c = generate_cmd(repo, env, *args)
    without = generate_cmd(repo, {**env, "CC": cc}, *args)
    assert without.stdout == with_c.stdout and len(with_c.stdout) > 240
    assert without.stderr.count("note: sampling with NumPy") == 1 and why in without.stderr
    assert "apt-get install gcc" in without.stderr and "Traceback" not in without.stderr
    assert "sampling with NumPy" not in with_c.stderr


def test_interactive_on_a_terminal_shows_a_banner_a_prompt_and_sets_the_text_apart(project):
    """On a terminal: a one-line banner, "> " before each prompt, and the prompt dimmed, so that
    what the model wrote stands apart from it."""
    repo, env, _, _ = project
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lstm_textgen", "generate", "--interactive", "--length", "20",
                             "--seed", "1"], cwd=repo, env={k: v for k, v in env.items() if k != "NO_COLOR"},
                            stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    screen = b""

    def read_until(marker: bytes, times: int = 1) -> None:
        nonlocal screen
        deadline = time.monotonic() + 60
        while screen.count(marker) < times and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                screen += os.read(leader, 4096)
        assert screen.count(marker) >= times, screen

    read_until(b"> ")
    os.write(leader, b"alice\n")
    read_until(b"\x1b[2malice\x1b[0m")
    read_until(b"> ", times=2)  # the next prompt: the answer is whole
    os.write(leader, b"\x04")  # Ctrl-D
    assert proc.wait(timeout=30) == 0
    os.close(leader)
    text = screen.decode()
    assert text.count("Ctrl-D ends") == 1 and "the char model in the workspace" in text
    generated = text.split("\x1b[2malice\x1b[0m", 1)[1].split("> ", 1)[0].strip()
    assert len(generated) >= 10, repr(text)  # the model's own characters follow the dimmed prompt


def test_validation_seeds_are_read_where_they_are_in_either_layout_of_a_commit(monkeypatch):
    """At a revision, the validation text comes from git or DVC as an open file: generate reads
    only the seed windows from it (data/windows/val.npy), or, for commits from before
    data/windows/, loads the small data/windows/val.npz those hold."""
    import contextlib
    import io
    import threading
    import numpy as np
    from lstm_textgen import audit
    from lstm_textgen.branches import branch_spec
    from lstm_textgen.generate import Model
    from lstm_textgen.sampling import validation_seeds
    tokens = (np.arange(300) % 7).astype(np.uint8)
    new, old = io.BytesIO(), io.BytesIO()
    np.save(new, tokens)
    np.savez(old, tokens=tokens, starts=np.arange(0, 280, 20), seq_length=np.int64(20))
    at_rev, reads = {}, []

    class Counted(io.BytesIO):
        def read(self, *size):
            reads.append(size)
            return super().read(*size)

    opens = []

    @contextlib.contextmanager
    def opened(path, rev, repo=None, from_git=True):
        opens.append(path)
        yield Counted(at_rev[path]) if rev == "abc" and path in at_rev else None

    monkeypatch.setattr(audit, "opened", opened)

    def model_at_rev():  # the rest of a Model (weights, vocabulary) plays no part here
        model = Model.__new__(Model)
        model.spec, model.rev, model.repo, model.commit, model.branch = branch_spec("char"), "old-run", None, "abc", "char"
        model._val, model._val_lock, model._open_files = None, threading.Lock(), contextlib.ExitStack()
        return model

    expected = [ids for _, ids in validation_seeds(tokens, 10, 3, np.random.default_rng(5))]
    for layout in ({"data/windows/val.npy": new.getvalue()}, {"data/windows/val.npz": old.getvalue()}):
        at_rev.clear()
        at_rev.update(layout)
        seeds = model_at_rev().validation_seeds(10, 3, np.random.default_rng(5))
        assert all(np.array_equal(a, b) for a, b in zip(seeds, expected, strict=True))
    at_rev.update({"data/windows/val.npy": new.getvalue()})
    model = model_at_rev()
    opens.clear()
    reads.clear()
    for _ in range(3):
        model.validation_seeds(10, 3, np.random.default_rng(5))
    assert opens == ["data/windows/val.npy"]  # opened once for the model's life, not once per text
    assert reads and all(size and size[0] <= 128 for size in reads)  # the header and the windows: never the whole file
    at_rev.clear()
    with pytest.raises(UserError, match=r"^no file data/windows/val.npy at old-run; train it there"):
        model_at_rev().validation_seeds(10, 3, np.random.default_rng(5))
