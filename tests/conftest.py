"""Shared fixtures: a real HTTP server on 127.0.0.1, fixture books the tests write themselves,
the shared corpora, and a copy of the project in a temporary git repo for the real `dvc` CLI."""

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Real, unmodified books and headlines; SOURCES.md there says where each came from.
CORPORA = Path(os.environ.get("LSTM_TEXTGEN_CORPORA", ROOT.parent / "shared" / "corpora"))
PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "lstm_textgen", ".dvc/config", ".dvc/plots_page.html",
                 ".dvc/plots/loss.json", ".dvcignore", ".gitignore", "data/base/README.md"]

WORDS = ("alice rabbit queen hatter turtle gryphon king cat tea garden door key little said went "
         "thought very curious time down the a of and to she it was in her that you as").split()


def book_body(n_words: int = 4000, seed: int = 0) -> str:
    """Made-up prose: enough structure for a tiny LSTM to learn something in one epoch."""
    rng = random.Random(seed)
    sentences, count = [], 0
    while count < n_words:
        k = rng.randint(4, 12)
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + rng.choice(".,;!?"))
        count += k
    lines, line = [], ""
    for s in sentences:
        if len(line) + len(s) > 70:
            lines.append(line)
            line = ""
        line = f"{line} {s}".strip()
    return "CHAPTER I.\n\n" + "\n".join(lines + [line]) + "\n\nTHE END"


def gutenberg_file(body: str, title: str = "A TEST BOOK", legacy: bool = False) -> bytes:
    """A Project Gutenberg file around `body`: today's layout (BOM, LF) or the pre-2012 one (CRLF)."""
    if legacy:
        text = (f"Project Gutenberg's {title}, by Nobody\r\n\r\nThis eBook is for the use of anyone anywhere\r\n\r\n"
                f"*** START OF THIS PROJECT GUTENBERG EBOOK {title} ***\r\n\r\nProduced by A Volunteer\r\n\r\n\r\n"
                + body.replace("\n", "\r\n")
                + f"\r\n\r\nEnd of Project Gutenberg's {title}, by Nobody\r\n\r\n"
                f"*** END OF THIS PROJECT GUTENBERG EBOOK {title} ***\r\n\r\n***** This file should be named 1.txt\r\n"
                "*** START: FULL LICENSE ***\r\n\r\nTHE FULL PROJECT GUTENBERG LICENSE\r\n")
    else:
        text = (f"The Project Gutenberg eBook of {title}\n    \nThis ebook is for the use of anyone anywhere\n\n"
                f"*** START OF THE PROJECT GUTENBERG EBOOK {title} ***\n\n\n" + body
                + f"\n\n\n*** END OF THE PROJECT GUTENBERG EBOOK {title} ***\n\nUpdated editions will replace "
                "the previous one\n\nSTART: FULL LICENSE\n\nTHE FULL PROJECT GUTENBERG LICENSE\n")
    return ("\ufeff" + text).encode("utf-8")


class Server:
    """Serves `files` (path → bytes) and scripted `faults` (path → list of responses, used in
    order, each: an int status, "html", "html-body" (an HTML page sent as text/plain), "stall"
    (answer nothing for 3 s), ("drop", n): send n bytes of a longer promised body, or
    ("retry-after", s): 503 with Retry-After: s).
    Counts requests per path."""

    def __init__(self):
        self.files, self.faults, self.hits = {}, {}, {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                fault = server.faults.get(self.path, []).pop(0) if server.faults.get(self.path) else None
                body = server.files.get(self.path)
                if fault == "stall":
                    time.sleep(3)
                elif isinstance(fault, int):
                    self.send_error(fault)
                elif fault == "html":
                    self._send(b"<!DOCTYPE html><html><body>Please log in</body></html>", "text/html; charset=utf-8")
                elif fault == "html-body":
                    self._send(b"\xef\xbb\xbf\r\n  <!doctype HTML>\n<html><body>Moved</body></html>\n",
                               "text/plain; charset=utf-8")
                elif isinstance(fault, tuple) and fault[0] == "retry-after":
                    self.send_response(503)
                    self.send_header("Retry-After", str(fault[1]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif isinstance(fault, tuple):  # promise the whole body, send part, hang up
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:fault[1]])
                    self.wfile.flush()
                    self.close_connection = True
                elif body is None:
                    self.send_error(404)
                else:
                    self._send(body, "text/plain; charset=utf-8")

            def _send(self, body, content_type):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        # shutdown() waits for serve_forever's next poll: 0.05 s, not the default 0.5 s per test
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@contextlib.contextmanager
def serving():
    srv = Server()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


@pytest.fixture(scope="module")
def module_server():
    with serving() as srv:
        yield srv


@pytest.fixture(scope="session")
def session_server():
    with serving() as srv:
        yield srv


@pytest.fixture
def corpora() -> Path:
    """The real books (LSTM_TEXTGEN_CORPORA, default ../shared/corpora). CI always has them, so
    there a missing folder fails instead of skipping."""
    if not (CORPORA / "pg11.txt").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CORPORA} is missing; CI must have ../shared beside the project")
        pytest.skip(f"{CORPORA}/pg11.txt not found: these tests read real books. Set LSTM_TEXTGEN_CORPORA to a "
                    "folder holding Project Gutenberg's pg11.txt and pg11-legacy.txt (the old release of eBook 11) "
                    "and nyt-headlines-avl1.csv (the headlines source in params.yaml); see README.md")
    return CORPORA


def write_params(path: Path, **sections) -> None:
    """params.yaml with the project's values, the given sections' keys replaced."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in sections.items():
        params[section.replace("_", "-")].update(values)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_data_stages(folder: Path, n_words: int = 4000, **sections) -> None:
    """The char branch's data stages, run in `folder` on a fixture book of `n_words` (TINY params
    updated by `sections`), as DVC would run them in the project root."""
    import download_gutenberg
    import encode_vocab
    import strip_boilerplate
    import window
    (folder / "mirror").mkdir()
    (folder / "mirror/pg1.txt").write_bytes(gutenberg_file(book_body(n_words)))
    write_params(folder, **{**TINY, **sections})
    old, os.environ["GUTENBERG_MIRROR"] = os.getcwd(), str(folder / "mirror")
    os.chdir(folder)
    try:
        for stage in (download_gutenberg, strip_boilerplate, encode_vocab, window):
            stage.main()
    finally:
        os.chdir(old)
        del os.environ["GUTENBERG_MIRROR"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run a stage's main() in an empty folder, as DVC would run it in the project root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GUTENBERG_MIRROR", raising=False)
    return tmp_path


def headlines_csv(n: int = 300, seed: int = 0) -> bytes:
    """Made-up headlines in the tutorial's one-column CSV, with "Unknown" rows among them (and
    "New York" in some, for the README's example)."""
    rng = random.Random(seed)
    rows = ["Unknown" if i % 10 == 0 else ("New York " if i % 7 == 0 else "")
            + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).title() for i in range(n)]
    return ("headline\r\n" + "\r\n".join(rows) + "\r\n").encode("utf-8")


TINY = {"download_gutenberg": {"book_ids": [1]},
        "window": {"seq_length": 20, "step": 10, "val_fraction": 0.1},
        "train_lstm": {"layers": 1, "units": 16, "embedding_dim": 8, "epochs": 1, "batch_size": 32, "precision": "float32"},
        "sample": {"length": 40, "num_samples": 2, "seed_length": 10},
        "tokenize_headlines": {"sha256": None, "vocab_size": 100, "max_length": 12},
        "train_lstm_headlines": {"units": 16, "embedding_dim": 8, "epochs": 1},
        "sample_headlines": {"seeds": ["alice", "the queen"], "max_words": 5}}


def dvc_env() -> dict:
    env = os.environ.copy()
    env.update(DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@127.0.0.1",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@127.0.0.1")
    env.pop("GUTENBERG_MIRROR", None)
    return env


def sh(args, cwd, env, check=True, timeout=600) -> subprocess.CompletedProcess:
    """Run a command; past `timeout` seconds kill it and everything it started (its own session),
    so a hung command fails its test with what it printed instead of stalling the run."""
    popen = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        stdout, stderr = popen.communicate()
        raise AssertionError(f"{' '.join(args)} still running after {timeout} s: killed\n{stdout}\n{stderr}")
    proc = subprocess.CompletedProcess(args, popen.returncode, stdout, stderr)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_dvc_project(repo: Path, server: Server):
    """A copy of the project in a fresh git repo (one commit, as DVCLive needs), with tiny
    params, and its book and headlines served by the local HTTP server."""
    for name in PROJECT_FILES:
        src, dst = ROOT / name, repo / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
         else shutil.copy2(src, dst))
    server.files["/pg1.txt"] = gutenberg_file(book_body())
    server.files["/headlines.csv"] = headlines_csv()
    tiny = {**TINY, "download_gutenberg": {**TINY["download_gutenberg"], "mirrors": [server.url + "/pg{id}.txt"]},
            "tokenize_headlines": {**TINY["tokenize_headlines"], "source": server.url + "/headlines.csv"}}
    write_params(repo, **tiny)
    env = dvc_env()
    sh(["git", "init", "-q"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "project"], repo, env)
    return repo, env


@pytest.fixture
def dvc_project(tmp_path, server):
    return make_dvc_project(tmp_path / "repo", server)


@pytest.fixture(scope="session")
def reproduced_template(tmp_path_factory, session_server) -> Path:
    """The tiny project after one whole `dvc repro`, its outputs not committed: built once per
    test process (a pytest-xdist worker), for `reproduced_project` to copy."""
    from test_pipeline import repro  # checks that every stage ran or was skipped
    repo, env = make_dvc_project(tmp_path_factory.mktemp("reproduced") / "repo", session_server)
    ran = repro(repo, env)
    assert "sample" in ran and "sample-headlines" in ran, ran
    return repo


@pytest.fixture(scope="session")
def reproduced_project(reproduced_template):
    """copy(dest) -> (repo, env): the tiny project as its first `dvc repro` left it, copied to
    `dest` with its .git and DVC cache. The tests that start from a reproduced project take a copy
    instead of each spending half a minute on the same repro (tests/test_pipeline.py checks that
    repro itself). The copy's params name this process's HTTP server, which lives as long as the
    tests run; DVC's state (.dvc/tmp) is left behind, so the copy hashes its own files afresh."""
    def copy(dest: Path) -> tuple[Path, dict]:
        shutil.copytree(reproduced_template, dest, symlinks=True,
                        ignore=lambda folder, names: ["tmp"] if Path(folder).name == ".dvc" else [])
        return dest, dvc_env()
    return copy
