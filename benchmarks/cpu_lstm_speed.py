"""Training speed of Keras' own LSTM loop against CpuLSTM's (lstm_textgen/cpu_lstm.py), side by
side in one run: quality.py's two LSTMs (2x256 and 2x512), with its settings, batches and
precision (mixed bfloat16 where the CPU runs it natively, else float32), on Tiny Shakespeare.
Each loop trains in short turns of `--seconds` after an untimed first step (TensorFlow traces
the model in it), the two alternating, each first in every other round: on a shared machine
whose speed swings from minute to minute, the two turns of a round see about the same machine.
The speedup is the median, over the rounds, of CpuLSTM's turn against Keras' turn in the same
round; the speeds are each loop's median.

    python benchmarks/cpu_lstm_speed.py     # about 5 minutes on 2 cores

Written: the "cpu_lstm" key of metrics/benchmarks.json (--out), every other key kept.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path


import quality  # (imports lstm before keras: it quiets TensorFlow's start-up log)
import keras

from lstm_textgen.cpu_lstm import CpuLSTM
from lstm_textgen.files import write_json
from run import machine

ROOT = Path(__file__).resolve().parents[1]

LOOPS = {"keras": keras.layers.LSTM, "cpu_lstm": CpuLSTM}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=quality.CORPUS)
    parser.add_argument("--seconds", type=float, default=5, help="of training per turn (default: %(default)s)")
    parser.add_argument("--turns", type=int, default=9, help="per loop and model (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "metrics/benchmarks.json")
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"{args.corpus} not found: pass Tiny Shakespeare's text with --corpus")
    vocab, train_ids, _ = quality.shakespeare(args.corpus)
    precision = quality.precisions()[-1]
    rows = []
    for kind in ("lstm", "lstm_large"):
        s = quality.settings(kind, precision)
        runs = {}
        for loop, layer in LOOPS.items():
            model, dataset, *_ = quality.compiled(kind, s, len(vocab["tokens"]), train_ids, lstm_layer=layer)
            runs[loop] = (model, iter(dataset), [])
            model.train_on_batch(*next(runs[loop][1]))
        for turn in range(args.turns):  # Keras' loop first in even rounds, CpuLSTM first in odd ones
            for model, batches, speeds in list(runs.values())[::1 if turn % 2 == 0 else -1]:
                speeds.append(quality.characters_per_second(model, batches, args.seconds, s))
        speed = {loop: round(statistics.median(speeds)) for loop, (_, _, speeds) in runs.items()}
        ratios = [ours / keras_ for keras_, ours in zip(runs["keras"][2], runs["cpu_lstm"][2])]
        rows.append({"model": quality.name(kind), "precision": precision, "characters_per_second": speed,
                     "turns": {loop: [round(v) for v in speeds] for loop, (_, _, speeds) in runs.items()},
                     "speedup": round(statistics.median(ratios), 2),
                     "speedup_range": [round(min(ratios), 2), round(max(ratios), 2)]})
        print(f"{quality.name(kind)}, {precision}: Keras' loop {speed['keras']:,} characters/s, "
              f"CpuLSTM {speed['cpu_lstm']:,}; CpuLSTM against Keras in the same round: {rows[-1]['speedup']}x "
              f"(from {rows[-1]['speedup_range'][0]}x to {rows[-1]['speedup_range'][1]}x)", flush=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["cpu_lstm"] = {"machine": machine(), "seconds_per_turn": args.seconds, "runs": rows}
    write_json(args.out, results)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
