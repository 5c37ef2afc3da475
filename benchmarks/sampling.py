"""Sampling speed at batch 1 on this machine: the tutorial's generation loop (`model.predict` on the
whole 100-character window per character, argmax) against this project's sampler (one carried-state
step per character, stages/sample.py's `generate`), on models of the same size. Speed does not
depend on what a model has learnt, so the models are freshly initialised.

    python benchmarks/sampling.py --out FILE.json
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "stages"), str(ROOT / "benchmarks")]

import keras  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

import lstm  # noqa: E402
import tutorial  # noqa: E402
from common import write_json  # noqa: E402
from sample import generate  # noqa: E402

VOCAB_SIZE = 49  # Alice, lowercased


def chars_per_second(run, n: int) -> float:
    run(2)  # warm up: the first calls trace and compile
    started = time.monotonic()
    run(n)
    return n / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tutorial-chars", type=int, default=50, help="characters the tutorial's loop generates")
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
    rows = [{"model": "tutorial 1x256 (floats in)", "loop": "tutorial",
             "chars_per_second": chars_per_second(lambda n: tutorial.generate(baseline, seed, n, VOCAB_SIZE),
                                                  args.tutorial_chars)}]
    for size, model in models.items():
        stepper = lstm.Stepper(model)
        tutorial_speed = chars_per_second(lambda n: tutorial.generate(model, seed, n, None), args.tutorial_chars)
        our_speed = chars_per_second(lambda n: generate(stepper, [np.array(seed)], n, 0.8, None, rng),
                                     args.our_chars)
        rows += [{"model": f"ours {size}", "loop": "tutorial", "chars_per_second": tutorial_speed},
                 {"model": f"ours {size}", "loop": "ours", "chars_per_second": our_speed,
                  "speedup_same_model": our_speed / tutorial_speed}]
    for row in rows:
        row.update({k: round(v, 1) for k, v in row.items() if isinstance(v, float)})
    write_json(args.out, {"batch_size": 1, "rows": rows})


if __name__ == "__main__":
    main()
