"""window: cut the encoded corpus into training and validation sequences.

    python stages/window.py      # run by `dvc repro window`

Params: the `window` section of params.yaml (seq_length, step, val_fraction).
Reads:  data/vocab/ids.npy.
Writes: data/windows/: train.npy and val.npy, each split's token ids once (training reads a
        batch's windows at a time, so its memory does not grow with the corpus), and
        windows.json: seq_length, and each split's step and window count (a window starts every
        `step` tokens).

The validation text is the contiguous tail of the corpus (windows cut at random would overlap
training windows and leak). The ids are read through memory maps, a piece at a time.
"""

from pathlib import Path

from lstm_textgen.errors import UserError, run_stage
from lstm_textgen.files import MappedVector, atomic_dir, write_json, write_npy
from lstm_textgen.params import fraction, positive_int, read_params
from lstm_textgen.windows import LAYOUT, make_windows

IDS = Path("data/vocab/ids.npy")
OUT = Path("data/windows")
PARAMS = {"seq_length": positive_int, "step": positive_int, "val_fraction": fraction}


def main() -> None:
    params = read_params("window", PARAMS)
    try:
        ids = MappedVector.open(IDS)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"cannot read {IDS} ({err}); run `dvc checkout {IDS}` or `dvc repro -f encode-vocab`")
    splits, layout = make_windows(ids, params["seq_length"], params["step"], params["val_fraction"])
    with atomic_dir(OUT) as out:  # the splits and their layout appear together, or not at all
        for name, tokens in splits.items():
            write_npy(out / f"{name}.npy", tokens)
        write_json(out / LAYOUT, layout)


if __name__ == "__main__":
    run_stage(main)
