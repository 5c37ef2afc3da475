"""Cost against corpus size, 1x to 1,000x Alice's size, side by side in one run: each data
stage's wall time and peak memory at every size, and train-lstm and the sample stage at 1x and
1,000x, training for the same number of tokens at each so that its memory and speed compare.

    python benchmarks/scale.py                                       # about 6 minutes on 2 cores
    python benchmarks/scale.py --sizes 1 10 --train-sizes 1 10 --rounds 1   # one minute

Each corpus is made of the real books in LSTM_TEXTGEN_CORPORA (default ../shared/corpora), Alice
first, then taken in turn, each added while it fits in the size (so a corpus is at most one
small book short of it), every copy a book of its own id. An HTTP server on 127.0.0.1 serves
them as a mirror, so download-gutenberg fetches them as it would from Project Gutenberg, several
at once. In a temporary folder per size, each stage runs as DVC runs it, `python
stages/<stage>.py` from the folder, in a process of its own, measured by run.py's measured():
wall and CPU seconds, peak resident memory.

Training (--train-sizes) is train-lstm with max_tokens: TRAIN_TOKENS, the same at every size, on
a smaller model than the default (TRAIN_MODEL) so that it takes a minute on a CPU, then the
sample stage on what it saved. Training runs --rounds times at each size, the sizes alternating,
so that the machine's drift falls on each alike; each figure is the median, with its range. Every size keeps WINDOW's val_fraction, a small one, so that
scoring the held-out text (which grows with the corpus; 10% of 1,000x is 15 million characters)
does not hide the training speed in the tokens per second train-lstm reports. The default model
is timed for one epoch on the smallest size, for its tokens per second.

Writes the "scale" key of metrics/benchmarks.json (keeping the others) and prints the table.
"""

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml


from lstm_textgen.download import POOL_SIZE
from lstm_textgen.files import write_json
from run import machine, measured, set_params, work_folder

ROOT = Path(__file__).resolve().parents[1]

CORPORA = Path(os.environ.get("LSTM_TEXTGEN_CORPORA", ROOT.parent / "shared" / "corpora"))
BOOKS = ["pg11.txt", "pg1342.txt", "pg1513.txt", "pg1228.txt", "pg11-legacy.txt"]  # Alice first: 1x is Alice
DATA_STAGES = ["download-gutenberg", "strip-boilerplate", "encode-vocab", "window"]
TRAIN_MODEL = {"layers": 1, "units": 128, "embedding_dim": 32, "batch_size": 128}
TRAIN_TOKENS = 4_000_000  # at every size: 15 epochs of 1x, 3% of one of 1,000x
WINDOW = {"val_fraction": 0.002}  # 300 held-out characters at 1x, 300,000 at 1,000x
ROUNDS = 3
MIB = 2 ** 20


def corpus_books(target_bytes: int, sizes: dict[str, int]) -> list[str]:
    """Books (names in `sizes`, in its order, again and again) adding up to at most
    `target_bytes`: each is taken when it still fits, until none does."""
    books, total = [], 0
    while any(total + size <= target_bytes for size in sizes.values()):
        for name, size in sizes.items():
            if total + size <= target_bytes:
                books.append(name)
                total += size
    return books


def build_mirror(folder: Path, books: list[Path]) -> int:
    """A mirror folder holding books[i] as pg<i+1>.txt; returns their bytes in all."""
    folder.mkdir(parents=True)
    for book_id, book in enumerate(books, 1):
        shutil.copyfile(book, folder / f"pg{book_id}.txt")
    return sum(book.stat().st_size for book in books)


@contextlib.contextmanager
def serving(folder: Path):
    """An HTTP server on 127.0.0.1 serving `folder`; yields its URL."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def stage_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GUTENBERG_MIRROR"}  # the params' mirror only
    return env | {"DVC_NO_ANALYTICS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_stage(folder: Path, stage: str, env: dict, *args: str) -> dict:
    """Run one stage's script in `folder` as DVC would; its wall and CPU seconds and peak memory (MiB)."""
    script = ROOT / "stages" / f"{stage.replace('-', '_')}.py"
    cost = measured([sys.executable, str(script), *args], folder, env, folder / f"{stage}.log")
    return {"seconds": round(cost.seconds, 2), "cpu_seconds": round(cost.cpu_seconds, 2),
            "peak_mib": round(cost.peak_mib, 1)}


def run_data_stages(folder: Path, books: list[Path], env: dict, **sections) -> dict:
    """The char branch's data stages on a corpus of `books`, each downloaded from a mirror on
    127.0.0.1, in `folder` (the project's params.yaml, `sections` updated). Returns each stage's
    seconds and peak memory, and the bytes of what they wrote."""
    raw_bytes = build_mirror(folder / "mirror", books)
    shutil.copyfile(ROOT / "params.yaml", folder / "params.yaml")
    results = {}
    with serving(folder / "mirror") as url:
        set_params(folder, **{"download-gutenberg": {"book_ids": list(range(1, len(books) + 1)),
                                                     "mirrors": [url + "/pg{id}.txt"]}}, **sections)
        for stage in DATA_STAGES:
            results[stage] = run_stage(folder, stage, env)
    data = folder / "data"
    results["bytes"] = {"raw": raw_bytes, "clean": (data / "clean/corpus.txt").stat().st_size,
                        "ids": (data / "vocab/ids.npy").stat().st_size,
                        "windows": sum(p.stat().st_size for p in (data / "windows").glob("*.npy"))}
    results["tokens"] = json.loads((folder / "metrics/vocab.json").read_text())["tokens"]
    return results


def run_training(folder: Path, env: dict, model: dict, **budget) -> dict:
    """train-lstm with `model`'s params and `budget` (epochs or max_tokens), in a folder where the
    data stages ran: the process's seconds and peak memory, and fit's own seconds and tokens per
    second (from its run.json: model.fit alone, the validation passes included, TensorFlow's start not)."""
    set_params(folder, **{"train-lstm": {**model, "patience": 0, **budget}})
    result = run_stage(folder, "train-lstm", env, "char")
    metrics = json.loads((folder / "metrics/train/char/run.json").read_text())
    return result | {"fit_seconds": metrics["train_seconds"], "tokens_trained": metrics["tokens_trained"],
                     "tokens_per_second": metrics["tokens_per_second"]}


def median_run(runs: list[dict]) -> dict:
    """Each figure of several runs of train-lstm: its median, and its range under `<name>_range`."""
    figures = {}
    for name in runs[0]:
        values = sorted(r[name] for r in runs)
        median = statistics.median(values)
        figures[name] = round(median) if all(isinstance(v, int) for v in values) else round(median, 2)
        if len(runs) > 1:
            figures[f"{name}_range"] = [values[0], values[-1]]
    return figures


def model_name(model: dict) -> str:
    return (f"{model['layers']}x{model['units']} LSTM, embedding {model['embedding_dim']}, "
            f"batch {model['batch_size']}")


def measure(work: Path, sizes: list[int], train_sizes: list[int], corpora: Path, with_default_model: bool,
            rounds: int = ROUNDS) -> dict:
    """The data stages at every size of `sizes`; train-lstm (`rounds` times, the sizes
    alternating) and the sample stage at `train_sizes` too."""
    books_bytes = {name: (corpora / name).stat().st_size for name in BOOKS}
    alice = books_bytes[BOOKS[0]]
    env, runs, to_train = stage_env(), {}, {}
    for multiple in sorted({*sizes, *train_sizes}):
        books = corpus_books(multiple * alice, books_bytes)
        label = f"{multiple}x"
        print(f"scale benchmark: {label} Alice, {len(books)} book(s)…", file=sys.stderr)
        folder = work / label
        folder.mkdir()
        run = run_data_stages(folder, [corpora / b for b in books], env, window=WINDOW)
        runs[label] = run | {"books": len(books), "multiple": round(run["bytes"]["raw"] / alice, 2)}
        if multiple in train_sizes:
            to_train[label] = folder
        elif multiple != min(sizes):  # its files are large: gone as soon as measured (the default model trains on 1x)
            shutil.rmtree(folder)
    trained = {label: [] for label in to_train}
    for round_ in range(rounds):
        for label, folder in to_train.items():
            print(f"scale benchmark: train-lstm at {label}, round {round_ + 1} of {rounds}…", file=sys.stderr)
            trained[label].append(run_training(folder, env, TRAIN_MODEL, epochs=10 ** 6, max_tokens=TRAIN_TOKENS))
    for label, folder in to_train.items():
        runs[label] |= {"train-lstm": median_run(trained[label]), "sample": run_stage(folder, "sample", env, "char")}
        if label != f"{min(sizes)}x":
            shutil.rmtree(folder)
    result = {"machine": machine(), "download_pool": POOL_SIZE, "train_model": model_name(TRAIN_MODEL),
              "train_tokens": TRAIN_TOKENS, "train_rounds": rounds, "window": WINDOW, "alice_bytes": alice,
              "runs": runs}
    if with_default_model:
        first = f"{min(sizes)}x"
        print(f"scale benchmark: the default model, one epoch on {first}…", file=sys.stderr)
        default = {k: v for k, v in default_train_params().items() if k in TRAIN_MODEL}
        result["default_model"] = {"model": model_name(default), "corpus": first,
                                   **run_training(work / first, env, default, epochs=1, max_tokens=None)}
    return result


def default_train_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())["train-lstm"]


def report(result: dict) -> str:
    runs = list(result["runs"].values())
    trained = [r for r in runs if "train-lstm" in r]
    last, m = runs[-1], result["machine"]
    lines = [f"cost against corpus size on {m['cpu']} ({m['cores']} cores); each stage a process of its own; "
             f"downloads from 127.0.0.1, {result['download_pool']} at once",
             "corpora: " + "; ".join(f"{r['multiple']}x Alice = {r['books']} book{'s' * (r['books'] > 1)}, "
                                     f"{r['bytes']['raw'] / MIB:.2f} MiB, {r['tokens']:,} tokens" for r in runs),
             f"training: {result['train_tokens']:,} tokens at each size, {result['train_model']} (smaller than the "
             f"default, so that it takes a minute); window.val_fraction {result['window']['val_fraction']}",
             "x 1x: over the smallest size's (each process also spends a fixed ~0.2 s starting Python, ~4 s more "
             "for TensorFlow); cpu: user + system seconds, which other jobs on the machine hardly change",
             "",
             f"{'stage':<20}{'size':>8}{'corpus MiB':>12}{'seconds':>9}{'x 1x':>7}{'cpu s':>9}{'x 1x':>7}"
             f"{'peak MiB':>10}{'peak - 1x':>11}"]
    for stage in [*DATA_STAGES, "train-lstm", "sample"]:
        rows = runs if stage in DATA_STAGES else trained
        for r in rows:
            cost, first = r[stage], rows[0][stage]
            lines.append(f"{stage if r is rows[0] else '':<20}{r['multiple']:>7}x{r['bytes']['raw'] / MIB:>12.2f}"
                         f"{cost['seconds']:>9.2f}{cost['seconds'] / first['seconds']:>7.1f}"
                         f"{cost['cpu_seconds']:>9.2f}{cost['cpu_seconds'] / first['cpu_seconds']:>7.1f}"
                         f"{cost['peak_mib']:>10.1f}{cost['peak_mib'] - first['peak_mib']:>+11.1f}")
    lines += ["", "disk per raw byte at the largest size: " + ", ".join(
                  f"{k} {v / last['bytes']['raw']:.2f}" for k, v in last["bytes"].items()),
              "download throughput from 127.0.0.1: " + ", ".join(
                  f"{r['bytes']['raw'] / MIB / r['download-gutenberg']['seconds']:.0f} MiB/s at {r['multiple']}x"
                  for r in runs)]
    if trained:
        def spread(cost, name, unit=""):
            low, high = cost.get(f"{name}_range", [cost[name]] * 2)
            return f"{cost[name]:,}{unit} ({low:,} to {high:,})" if low != high else f"{cost[name]:,}{unit}"

        speed = [r["train-lstm"]["tokens_per_second"] for r in trained]
        rounds = result.get("train_rounds", 1)
        lines.append(f"training, {result['train_model']}, " + ("one run a size: " if rounds == 1 else
                                                              f"median of {rounds} runs a size (range): ")
                     + ", ".join(f"{spread(r['train-lstm'], 'tokens_per_second')} tokens/s and peak "
                                              f"{spread(r['train-lstm'], 'peak_mib', ' MiB')} at {r['multiple']}x"
                                              for r in trained)
                     + f"; the largest size at {speed[-1] / speed[0]:.3f}x the smallest's speed")
        growth = {stage: trained[-1][stage]["peak_mib"] - trained[0][stage]["peak_mib"] for stage in ("train-lstm", "sample")}
        lines.append(f"peak memory from {trained[0]['multiple']}x to {trained[-1]['multiple']}x: "
                     + ", ".join(f"{stage} {g:+.1f} MiB" for stage, g in growth.items()))
    if default := result.get("default_model"):
        lines.append(f"default model ({default['model']}), one epoch at {default['corpus']}: "
                     f"{default['tokens_per_second']:,} tokens/s, {default['fit_seconds']} s, "
                     f"peak {default['peak_mib']:.0f} MiB")
    return "\n".join(lines)


def at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000],
                        help="multiples of Alice for the data stages (default 1 10 100 1000)")
    parser.add_argument("--train-sizes", type=int, nargs="*", default=[1, 1000],
                        help="multiples of Alice for train-lstm and the sample stage too (default 1 1000)")
    parser.add_argument("--no-default-model", action="store_true",
                        help="skip timing the default model on the smallest size")
    parser.add_argument("--rounds", type=at_least_one, default=ROUNDS,
                        help=f"train-lstm runs at each training size, alternating (default {ROUNDS})")
    parser.add_argument("--out", type=Path, default=ROOT / "metrics/benchmarks.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    args = parser.parse_args()
    if not (CORPORA / BOOKS[0]).is_file():
        sys.exit(f"{CORPORA} does not hold {', '.join(BOOKS)}: set LSTM_TEXTGEN_CORPORA to a folder that does")

    with work_folder("lstm-textgen-scale-", args.keep, "the logs and the data") as work:
        result = measure(work, args.sizes, args.train_sizes, CORPORA, not args.no_default_model, args.rounds)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    write_json(args.out, results | {"scale": result})
    print(report(result))
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
