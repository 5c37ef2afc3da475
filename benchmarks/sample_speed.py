"""Sampling speed at batch 1 on this machine: the tutorial's generation loop (`model.predict` on the
whole 100-character window per character, argmax) against this project's sampler (one carried-state
step per character, lstm_textgen/sampling.py's `generate`), with its C step and with the NumPy
step that runs where there is no C compiler, on models of the same size; and the time from starting
`lstm-textgen generate PROMPT` on a terminal to its first generated character, with the
default-size model: warm (the sampler's C, compiled on a first run, is in lstm_textgen/__pycache__
by then) and once cold, with a compiler of a name not seen before (so the C is compiled again).
Speed does not depend on what a model has learnt, so the models are freshly initialised.

    python benchmarks/sample_speed.py --out FILE.json
"""

import argparse
import json
import os
import pty
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


import keras
import numpy as np
import yaml

from lstm_textgen import model as lstm
from lstm_textgen import sampling
from lstm_textgen.sampling import Stepper, generate
import tutorial
from lstm_textgen.files import write_json

ROOT = Path(__file__).resolve().parents[1]

VOCAB_SIZE = 49  # Alice, lowercased


def chars_per_second(run, n: int) -> float:
    run(2)  # warm up: the first calls trace and compile
    started = time.monotonic()
    run(n)
    return n / (time.monotonic() - started)


def median_speed(run, n: int, rounds: int) -> tuple[float, list[float]]:
    """The median chars/s of `rounds` timings of `n` characters each, and the slowest and fastest."""
    speeds = [chars_per_second(run, n) for _ in range(rounds)]
    return statistics.median(speeds), [round(min(speeds), 1), round(max(speeds), 1)]


def seconds_to_first_char(project: Path, env: dict | None = None, prompt: str = "alice", *options: str) -> float:
    """Start `lstm-textgen generate` on a pseudo-terminal (so it streams, as for a person) and time
    the wait until the first character after the prompt arrives (NO_COLOR: the prompt is shown
    plain, so the bytes after it are the model's)."""
    leader, follower = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lstm_textgen", "generate", prompt, "--length", "50", *options],
                            cwd=project, env={**(env or os.environ), "NO_COLOR": "1"}, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    seen = b""
    while len(seen) <= len(prompt):
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            proc.kill()
            sys.exit(f"lstm-textgen generate printed nothing in 30 s: {proc.stderr.read().decode()}")
        seen += os.read(leader, 1024)
    first = time.monotonic() - started
    proc.wait()
    os.close(leader)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tutorial-chars", type=int, default=150,
                        help="characters the tutorial's loop generates per round (about 10 s)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per loop; the median is reported")
    parser.add_argument("--our-chars", type=int, default=5000, help="characters our sampler generates")
    args = parser.parse_args()

    train = yaml.safe_load((ROOT / "params.yaml").read_text())["train-lstm"]
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    seed = rng.integers(0, VOCAB_SIZE, tutorial.SEQ_LENGTH).tolist()
    models = {"1x256": lstm.build_model(VOCAB_SIZE, train["embedding_dim"], 256, 1, 0.0),
              f"{train['layers']}x{train['units']}": lstm.build_model(VOCAB_SIZE, train["embedding_dim"],
                                                                       train["units"], train["layers"], 0.0)}
    baseline = tutorial.build_model(VOCAB_SIZE)  # the tutorial's own model: floats in, one softmax out
    # The tutorial's loop swings with the machine's load (one 50-character timing ranged 7 to 26
    # chars/s between runs): timed over several rounds of about 10 s, its median reported.
    speed, spread = median_speed(lambda n: tutorial.generate(baseline, seed, n, VOCAB_SIZE), args.tutorial_chars,
                                 args.rounds)
    rows = [{"model": "tutorial 1x256 (floats in)", "loop": "tutorial", "chars_per_second": speed,
             "range": spread}]
    for size, model in models.items():
        stepper = Stepper(lstm.sampler_weights(model))
        tutorial_speed, spread = median_speed(lambda n: tutorial.generate(model, seed, n, None), args.tutorial_chars,
                                              args.rounds)
        rows.append({"model": f"ours {size}", "loop": "tutorial", "chars_per_second": tutorial_speed,
                     "range": spread})
        for loop, use_c in (("ours", True), ("ours, NumPy step", False)):
            sampling.USE_C = use_c
            if use_c and sampling.compiled() is None:
                sys.exit("the sampler's C did not build here (see above): its speed cannot be measured")
            speed, spread = median_speed(lambda n: generate(stepper, [np.array(seed)], n, 0.8, None, rng),
                                         args.our_chars, args.rounds)
            rows.append({"model": f"ours {size}", "loop": loop, "chars_per_second": speed, "range": spread,
                         "speedup_same_model": speed / tutorial_speed})
        sampling.USE_C = True
        rows[-1]["c_step_speedup"] = rows[-2]["chars_per_second"] / rows[-1]["chars_per_second"]
    for row in rows:
        row.update({k: round(v, 1) for k, v in row.items() if isinstance(v, float)})

    # generate.py as a person starts it, on the default-size model laid out as in a project
    with tempfile.TemporaryDirectory() as project:
        project = Path(project)
        default = models[f"{train['layers']}x{train['units']}"]
        (project / "data/models").mkdir(parents=True)
        (project / "data/vocab").mkdir(parents=True)
        np.savez(project / "data/models/char.npz", **lstm.sampler_weights(default))
        tokens = sorted(set("abcdefghijklmnopqrstuvwxyz \n.,;:!?'\"-()[]*_0123456789"))[:VOCAB_SIZE]
        (project / "data/vocab/chars.json").write_text(json.dumps({"unit": "char", "tokens": tokens, "unknown": None}))
        starts = [seconds_to_first_char(project) for _ in range(5)]
        compiler = project / "cc"  # the C compiler under a new name: the sampler compiles its C again
        found = shutil.which(shlex.split(os.environ.get("CC") or "cc")[0])
        if found is None:
            sys.exit("no C compiler to time the sampler's first, compiling, start with")
        compiler.symlink_to(found)
        cache = ROOT / "lstm_textgen/__pycache__"
        before = set(cache.glob("sampling-*.so"))
        cold = seconds_to_first_char(project, {**os.environ, "CC": str(compiler)})
        for built in set(cache.glob("sampling-*.so")) - before:
            built.unlink()
    write_json(args.out, {"batch_size": 1, "rows": rows,
                          "generate_seconds_to_first_char": {"median": round(statistics.median(starts), 3),
                                                             "max": round(max(starts), 3), "runs": len(starts),
                                                             "first_run_compiling": round(cold, 3)}})


if __name__ == "__main__":
    main()
