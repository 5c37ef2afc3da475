"""generate: text from a trained model, starting from your own prompt. A command for people
(`lstm-textgen generate`): it writes nothing that DVC tracks.

    lstm-textgen generate "alice was"                      # the char model in the workspace
    lstm-textgen generate --branch headlines "new york"    # a headline that starts so
    lstm-textgen generate                                  # from a validation window, as `sample` does
    echo "the queen" | lstm-textgen generate -             # the prompt from standard input
    lstm-textgen generate --interactive                    # a prompt per line, Ctrl-D ends
    lstm-textgen generate --rev v1 "alice"                 # a commit, branch, tag or `dvc exp` name
    lstm-textgen generate --repo ../teammate "alice"       # another clone's model, from its DVC remote
    lstm-textgen generate --json "alice"                   # the texts with their provenance

The model is the weights train-lstm saved as NumPy arrays (data/models/<branch>.npz), run by the
same sampler as the sample stage, so the same seed and settings give the same text, and nothing
here imports TensorFlow: the first character appears a fraction of a second after the start.
A prompt is cleaned as the training text was (lowercased, say); what the model still cannot read
is refused by name. `generate()` does the same for Python code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import sys
import threading
import zipfile

import numpy as np

from lstm_textgen.branches import branch_spec
from lstm_textgen.errors import UserError
from lstm_textgen.files import NpyFile
from lstm_textgen.sampling import (Stepper, banned_ids, check_model_matches, compiled, encode_prompt,
                                   generate as sample_rows, validation_seeds)
from lstm_textgen.vocab import decode_chars

DEFAULT_LENGTH = {"char": 500, "headlines": 20}  # characters; words, if the headline has not ended
DEFAULT_TEMPERATURE = 0.8
OLD_CHAR_VAL = "data/windows/val.npz"  # where commits before data/windows/ held the char validation text


class Model:
    """A branch's model, vocabulary and validation text, read from the workspace, a revision or
    another clone (through dvc.api, which fetches from the DVC remote what the cache lacks)."""

    def __init__(self, branch: str = "char", rev: str | None = None, repo: str | None = None):
        self.spec, self.rev, self.repo = branch_spec(branch), rev, repo
        self.branch = branch
        self.commit = None
        if repo:
            from lstm_textgen.audit import check_repo
            check_repo(repo, rev)
        elif rev:
            from lstm_textgen.audit import resolve_rev
            self.commit = resolve_rev(rev)
        self.stepper = Stepper(np.load(io.BytesIO(self._read(self.spec["weights"])), allow_pickle=False))
        compiled()  # builds the C step now (or says, once, that NumPy's runs), not amid the first text
        self.vocab = json.loads(self._read(self.spec["vocab"]))
        check_model_matches(self.spec, self.stepper.vocab_size, self.vocab, self._where())
        self._val, self._val_lock, self._open_files = None, threading.Lock(), contextlib.ExitStack()

    def _where(self) -> str:
        return (f" in {self.repo}" if self.repo else "") + (f" at {self.rev}" if self.rev else "")

    def _read(self, path) -> bytes:
        from lstm_textgen.audit import read_bytes
        from_workspace = not (self.rev or self.repo)
        content = read_bytes(str(path), self.commit or self.rev, self.repo)
        if content is None:
            what = "model" if path == self.spec["weights"] else "file"
            fix = (f"run `dvc repro {self.spec['train_stage']}`, or `dvc pull` if it was pushed" if from_workspace
                   else "train it there, or choose another --rev")
            raise UserError(f"no {what} {path}{self._where() or ' in the workspace'}; {fix}")
        return content

    def validation_seeds(self, seed_length: int, num: int, rng) -> list[np.ndarray]:
        """char: `num` windows of the validation text, chosen by the RNG as the sample stage
        chooses them, each read where it is: the text (a tenth of a shelf) is never loaded."""
        with self._val_lock:  # generate() may run in several threads: one seek and read at a time
            try:
                return [ids for _, ids in validation_seeds(self._validation(), seed_length, num, rng)]
            except (OSError, ValueError, EOFError) as err:
                raise self._unreadable(self.spec["val"], err)

    def validation_rows(self) -> np.ndarray:
        """headlines: the validation headlines' rows of word ids (a few thousand: loaded)."""
        with self._val_lock:
            return self._validation()

    def _validation(self):
        """The branch's validation data, opened once: char, the text as an NpyFile over its file,
        kept open; an older commit's char text, or the headlines' rows, loaded from their .npz."""
        if self._val is None:
            from lstm_textgen.audit import opened
            at, elsewhere = self.commit or self.rev, bool(self.rev or self.repo)
            for path in (str(self.spec["val"]), *([OLD_CHAR_VAL] if elsewhere and self.branch == "char" else [])):
                if (f := self._open_files.enter_context(opened(path, at, self.repo))) is not None:
                    break
            else:
                self._read(self.spec["val"])  # which says it is missing, and what to do
            f = f if f.seekable() else io.BytesIO(f.read())
            try:
                if path.endswith(".npz"):
                    with np.load(f, allow_pickle=False) as arrays:
                        self._val = arrays["rows" if "rows" in arrays.files else "tokens"]
                else:
                    self._val = NpyFile(f)
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
                raise self._unreadable(path, err)
        return self._val

    def _unreadable(self, path, err: Exception) -> UserError:
        return UserError(f"cannot read {path}{self._where()} ({err}); run `dvc repro -f {self.spec['upstream']}` there")

    def provenance(self) -> dict:
        """What `lstm-textgen audit --json` says of these weights: the params and data upstream, the score."""
        from lstm_textgen.audit import audit_file
        return audit_file(str(self.spec["weights"]), self.rev, self.repo)


def check_settings(length: int, temperature: float, top_k, top_p, num: int, seed: int | None = None) -> None:
    problems = [f"--seed {seed} must be a whole number >= 0" if seed is not None and seed < 0 else None,
                f"--length {length} must be a whole number >= 1" if length < 1 else None,
                f"--num {num} must be a whole number >= 1" if num < 1 else None,
                f"--temperature {temperature} must be > 0" if not temperature > 0 else None,
                f"--top-k {top_k} must be a whole number >= 1" if top_k is not None and top_k < 1 else None,
                f"--top-p {top_p} must be > 0 and <= 1" if top_p is not None and not 0 < top_p <= 1 else None]
    if any(problems):
        raise UserError("; ".join(p for p in problems if p))


def generate(prompt: str | None = None, *, model: Model | None = None, branch: str = "char", length: int | None = None,
             num: int = 1, seed: int | None = None, temperature: float = DEFAULT_TEMPERATURE, top_k: int | None = None,
             top_p: float | None = None, rev: str | None = None, repo: str | None = None, seed_length: int = 100,
             on_token=None) -> list[str]:
    """`num` texts from the model of `branch` (loaded here unless `model` is given), each the
    prompt followed by what the model wrote. No prompt: each starts from a window of the
    validation text (char; `seed_length` long) or a validation headline's first word, chosen by
    `seed`, as the sample stage chooses them. `on_token(text)` receives the first text as it
    grows: its prompt, then each token as it is drawn."""
    model = model or Model(branch, rev, repo)
    branch, vocab, tokens = model.branch, model.vocab, model.vocab["tokens"]
    length = DEFAULT_LENGTH[branch] if length is None else length
    check_settings(length, temperature, top_k, top_p, num, seed)
    rng = np.random.default_rng(seed)
    if prompt is not None:
        seeds = [encode_prompt(prompt, vocab, "the prompt")] * num
    elif branch == "char":
        seeds = model.validation_seeds(seed_length, num, rng)
    else:  # the first word of a validation headline: the model has no start-of-headline token
        rows = model.validation_rows()
        seeds = [rows[i, :1] for i in rng.integers(0, len(rows), size=num)]
    end_id = tokens.index(vocab["end"]) if vocab.get("end") else None
    words = vocab["unit"] == "word"
    decode = (lambda ids: " ".join(tokens[i] for i in ids)) if words else (lambda ids: decode_chars(ids, vocab))
    ended = False

    def stream(step_tokens):  # the first text's tokens, as drawn, up to its end token
        nonlocal ended
        ended = ended or int(step_tokens[0]) == end_id
        if not ended:
            on_token((" " if words else "") + tokens[int(step_tokens[0])])

    if on_token:
        on_token(decode(seeds[0]))
    rows = sample_rows(model.stepper, seeds, length, temperature, top_k, rng, end_id=end_id, top_p=top_p,
                       banned=banned_ids(vocab), on_token=stream if on_token else None)
    return [decode([*s, *row]) for s, row in zip(seeds, rows)]


def main(argv=None, prog=None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("\n", " "),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n" + __doc__.split("\n\n")[1])
    parser.add_argument("prompt", nargs="?", help="text to start from; '-' reads it from standard input; "
                                                  "none: a validation window, as the sample stage does")
    parser.add_argument("--branch", default="char", help="char (default) or headlines")
    parser.add_argument("--length", type=int, help="tokens to generate (char: characters, default 500; "
                                                    "headlines: words, default 20, stopping where the headline ends)")
    parser.add_argument("--num", type=int, default=1, help="how many texts (default 1)")
    parser.add_argument("--seed", type=int, help="random seed: the same seed and settings give the same text "
                                                 "(default: a fresh one, shown by --json)")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help=f"below 1: safer text; above 1: wilder (default {DEFAULT_TEMPERATURE})")
    parser.add_argument("--top-k", type=int, help="draw only from the k most likely tokens")
    parser.add_argument("--top-p", type=float, help="nucleus sampling: draw only from the most likely tokens "
                                                    "whose probability together reaches p")
    parser.add_argument("--rev", help="the model of a git commit, branch, tag or `dvc exp` experiment name "
                                      "(read with dvc.api; the workspace is untouched)")
    parser.add_argument("--repo", help="another clone of this project (a path or git URL): its model, fetched "
                                       "from its DVC remote")
    parser.add_argument("--json", action="store_true", help="print the texts with their provenance as JSON")
    parser.add_argument("--interactive", action="store_true", help="read one prompt per line; Ctrl-D ends")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    settings = {"length": args.length, "num": args.num, "temperature": args.temperature, "top_k": args.top_k,
                "top_p": args.top_p}
    check_settings(1 if args.length is None else args.length, args.temperature, args.top_k, args.top_p, args.num,
                   args.seed)
    model = Model(args.branch, args.rev, args.repo)
    if settings["length"] is None:
        settings["length"] = DEFAULT_LENGTH[model.branch]

    def answer(prompt: str | None, seed: int) -> None:
        streaming = sys.stdout.isatty() and not args.json  # on a terminal, show the text as it grows
        chunks = 0

        def show(text: str) -> None:  # the first chunk is the prompt: dimmed, so the model's words stand apart
            nonlocal chunks
            print(f"{DIM}{text}{PLAIN}" if chunks == 0 and not os.environ.get("NO_COLOR") else text, end="", flush=True)
            chunks += 1

        texts = generate(prompt, model=model, seed=seed, on_token=show if streaming else None, **settings)
        if args.json:
            print(json.dumps({"branch": model.branch, "prompt": prompt, "seed": seed, "settings": settings,
                              "texts": texts, "provenance": model.provenance()}, indent=2, ensure_ascii=False))
            return
        for number, text in enumerate(texts):
            print("" if streaming and number == 0 else text, flush=True)
            if model.branch == "char" and (number < len(texts) - 1 or args.interactive):
                print()  # char texts span lines: a blank line between them

    if not args.interactive:
        prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
        answer(prompt, seed)
        return
    for number, line in enumerate(prompts(model)):
        try:
            answer(line or None, seed + number)
        except UserError as err:  # a bad prompt ends nothing: say why and wait for the next one
            print(f"error: {err}", file=sys.stderr)


DIM, PLAIN = "\x1b[2m", "\x1b[0m"


def prompts(model: Model):
    """--interactive's prompts, a line each. On a terminal, a one-line banner first and a "> "
    prompt before each line; from a pipe, just the lines."""
    if not sys.stdin.isatty():
        yield from (line.rstrip("\n") for line in sys.stdin)
        return
    where = model._where() or " in the workspace"
    print(f"lstm-textgen: the {model.branch} model{where}. Type a prompt and press Enter (an empty line starts "
          "from a validation text); Ctrl-D ends.", file=sys.stderr)
    while True:
        try:
            yield input("> ")
        except EOFError:
            print(file=sys.stderr)
            return
