"""The stages that only move data: strip-boilerplate, encode-vocab, window, and what they share."""

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from lstm_textgen import files
from lstm_textgen import params
from lstm_textgen import vocab as vocabulary
import encode_vocab
import strip_boilerplate
import window
from lstm_textgen.errors import UserError
from lstm_textgen.cleaning import clean_text
from conftest import ROOT, book_body, gutenberg_file, write_params
from lstm_textgen import gutenberg
from lstm_textgen import shuffle, windows
from lstm_textgen.branches import load_split


# --- strip-boilerplate ----------------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True], ids=["2012+ markers, BOM, LF", "pre-2012 markers, CRLF"])
def test_strip_keeps_exactly_the_body(legacy):
    body = book_body(300)
    text = gutenberg_file(body, legacy=legacy).decode("utf-8")
    assert gutenberg.strip_gutenberg(text) == body


def test_strip_without_markers_names_what_is_missing():
    with pytest.raises(gutenberg.NoMarkers, match="START"):
        gutenberg.strip_gutenberg("Just some text.\n")
    with pytest.raises(gutenberg.NoMarkers, match="END"):
        gutenberg.strip_gutenberg("*** START OF THE PROJECT GUTENBERG EBOOK X ***\nbody\n")


def test_clean_lowercases_and_folds_punctuation():
    text = "\u201cOh\u2014dear\u2019s\u2026\u201d"
    assert clean_text(text, lowercase=True, ascii_punctuation=True) == "\"oh--dear's...\""
    assert clean_text(text, lowercase=False, ascii_punctuation=False) == text


def stage_dir(tmp, books: dict, **params):
    raw = tmp / "data/raw"
    raw.mkdir(parents=True)
    for book_id, data in books.items():
        (raw / f"pg{book_id}.txt").write_bytes(data)
    (raw / "manifest.json").write_text(json.dumps([{"id": i} for i in books]))
    write_params(tmp, **params)


def test_strip_stage_joins_books_and_reports_metrics(in_tmp):
    first, second = book_body(200, seed=1), book_body(200, seed=2)
    stage_dir(in_tmp, {5: gutenberg_file(first), 6: gutenberg_file(second, legacy=True)})
    strip_boilerplate.main()
    corpus = (in_tmp / "data/clean/corpus.txt").read_text(encoding="utf-8")
    assert corpus == f"{first.lower()}\n\n{second.lower()}\n"
    metrics = json.loads((in_tmp / "metrics/corpus.json").read_text())
    assert metrics["books"] == 2 and metrics["characters"] == len(corpus)
    assert metrics["characters_removed"] > 200


def test_strip_stage_refuses_a_file_without_markers_unless_not_strict(in_tmp, capsys):
    stage_dir(in_tmp, {7: b"An essay with no Gutenberg markers.\r\n"})
    with pytest.raises(UserError, match=r"data/raw/pg7.txt.*START.*strict: false"):
        strip_boilerplate.main()
    assert not (in_tmp / "data/clean/corpus.txt").exists()
    write_params(in_tmp, strip_boilerplate={"strict": False})
    strip_boilerplate.main()
    assert (in_tmp / "data/clean/corpus.txt").read_text() == "an essay with no gutenberg markers.\n"
    assert "pg7.txt" in capsys.readouterr().err


def test_strip_stage_refuses_non_utf8_and_empty_books(in_tmp):
    stage_dir(in_tmp, {8: gutenberg_file("caf\u00e9").replace("caf\u00e9".encode(), b"caf\xe9")})
    with pytest.raises(UserError, match=r"pg8.txt is not UTF-8"):
        strip_boilerplate.main()
    (in_tmp / "data/raw/pg8.txt").write_bytes(gutenberg_file("   "))
    with pytest.raises(UserError, match=r"pg8.txt: nothing is left"):
        strip_boilerplate.main()


# --- the real books, through the local mirror ------------------------------------------------

@pytest.mark.parametrize("name, opening", [
    ("pg11.txt", "[illustration]\n\n\n\n\nalice\u2019s adventures in wonderland\n\nby lewis carroll\n"),
    ("pg11-legacy.txt", "alice's adventures in wonderland\n\nlewis carroll\n"),
])
def test_real_alice_keeps_exactly_the_book(name, opening, corpora, server, in_tmp):
    import download_gutenberg
    server.files["/pg11.txt"] = (corpora / name).read_bytes()
    write_params(in_tmp, download_gutenberg={"book_ids": [11], "mirrors": [server.url + "/pg{id}.txt"]})
    download_gutenberg.main()
    assert (in_tmp / "data/raw/pg11.txt").read_bytes() == (corpora / name).read_bytes()
    strip_boilerplate.main()
    corpus = (in_tmp / "data/clean/corpus.txt").read_text(encoding="utf-8")
    assert corpus.startswith(opening)
    assert corpus.endswith("days.\n\n              the end\n" if "legacy" in name else "days.\n\nthe end\n")
    assert "chapter i." in corpus[:2000]
    for boilerplate in ("gutenberg", "license", "ebook", "\r", "\ufeff"):
        assert boilerplate not in corpus
    assert 140_000 < len(corpus) < 150_000


# --- encode-vocab ---------------------------------------------------------------------------

def test_vocab_round_trips_and_is_compact():
    text = "hello, world\n"
    vocab = vocabulary.build_char_vocab(text)
    assert vocab == {"unit": "char", "tokens": sorted(set(text)), "unknown": None}
    ids = vocabulary.encode_chars(text, vocab)
    assert ids.dtype == np.uint8
    assert vocabulary.decode_chars(ids, vocab) == text


def test_rare_characters_map_to_unknown():
    vocab = vocabulary.build_char_vocab("aaabbbc", min_count=2)
    assert vocab == {"unit": "char", "tokens": ["a", "b", vocabulary.UNKNOWN_CHAR], "unknown": vocabulary.UNKNOWN_CHAR}
    assert vocabulary.decode_chars(vocabulary.encode_chars("abcz", vocab), vocab) == "ab" + vocabulary.UNKNOWN_CHAR * 2


def test_characters_outside_a_closed_vocabulary_are_named():
    vocab = vocabulary.build_char_vocab("abc")
    with pytest.raises(UserError, match=r"seed has characters outside the vocabulary: 'X', 'Z'"):
        vocabulary.encode_chars("aXbZ", vocab, "seed")


def test_encode_stage_refuses_an_empty_corpus(in_tmp):
    write_params(in_tmp)
    (in_tmp / "data/clean").mkdir(parents=True)
    (in_tmp / "data/clean/corpus.txt").write_text("\n\n")
    with pytest.raises(UserError, match=r"data/clean/corpus.txt is empty"):
        encode_vocab.main()
    assert not (in_tmp / "data/vocab").exists()


# --- window ---------------------------------------------------------------------------------

def test_windows_split_at_the_tail_and_say_where_each_window_starts():
    ids = np.arange(1000) % 251
    splits, layout = windows.make_windows(ids.astype(np.uint8), seq_length=10, step=3, val_fraction=0.2)
    assert np.array_equal(np.concatenate([splits["train"], splits["val"]]), ids)
    assert (len(splits["train"]), len(splits["val"])) == (800, 200)
    assert layout == {"seq_length": 10, "train": {"step": 3, "windows": 264},
                      "val": {"step": 10, "windows": 19}}  # held-out windows do not overlap
    train, seq_length = layout["train"], layout["seq_length"]
    last = train["step"] * (train["windows"] - 1)
    assert last + seq_length < len(splits["train"]) <= last + seq_length + train["step"]  # the last fits, no more do


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 63, 64, 65, 1000, 4097])
def test_an_epochs_shuffled_windows_are_each_window_once_drawn_from_seed_and_epoch(n):
    order = shuffle.shuffled_windows(np.arange(n), n, seed=7, epoch=3)
    assert sorted(order) == list(range(n))  # a permutation: every window once per epoch
    batch = shuffle.shuffled_windows(np.arange(n)[n // 2:n // 2 + 5], n, seed=7, epoch=3)
    assert np.array_equal(batch, order[n // 2:n // 2 + 5])  # any batch alone, as a resumed run asks for it
    if n >= 64:  # another epoch or seed: another order
        assert not np.array_equal(order, shuffle.shuffled_windows(np.arange(n), n, seed=7, epoch=4))
        assert not np.array_equal(order, shuffle.shuffled_windows(np.arange(n), n, seed=8, epoch=3))


def test_the_shuffle_spreads_neighbouring_positions_over_the_whole_text():
    n = 100_000
    order = shuffle.shuffled_windows(np.arange(n), n, seed=0, epoch=0)
    assert abs(np.corrcoef(np.arange(n), order)[0, 1]) < 0.01
    first_batch = order[:64]
    assert np.ptp(first_batch) > n / 2  # one batch's windows come from all over the text
    assert np.histogram(order[:n // 10], bins=10, range=(0, n))[0].min() > n / 100 * 0.8


def test_the_window_stage_writes_the_ids_to_map_and_their_layout(in_tmp):
    write_params(in_tmp, window={"seq_length": 10, "step": 3, "val_fraction": 0.2})
    ids = (np.arange(1000) % 251).astype(np.uint8)
    files.write_npy(in_tmp / "data/vocab/ids.npy", ids)
    window.main()
    out = in_tmp / "data/windows"
    assert sorted(p.name for p in out.iterdir()) == ["train.npy", "val.npy", "windows.json"]
    assert np.array_equal(np.load(out / "train.npy", mmap_mode="r"), ids[:800])
    assert np.array_equal(np.load(out / "val.npy", mmap_mode="r"), ids[800:])
    assert json.loads((out / "windows.json").read_text())["train"] == {"step": 3, "windows": 264}  # the ids: 800
    train = load_split(out / "train.npy", {"tokens": [chr(i) for i in range(251)]}, "window")
    assert (train["seq_length"], train["step"], train["windows"]) == (10, 3, 264)
    assert np.array_equal(train["tokens"].gather(np.array([0, 3 * 263]), 11), [ids[0:11], ids[789:800]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_batch_of_windows_is_read_from_any_slice_of_the_file_and_its_bounds_are_named(tmp_path, dtype):
    ids = (np.arange(10_000) % 7_000).astype(dtype)
    files.write_npy(tmp_path / "ids.npy", ids)
    tail = files.MappedVector.open(tmp_path / "ids.npy")[5_000:]
    starts = np.array([0, 17, 4_989, 3])
    assert np.array_equal(tail.gather(starts, 11), ids[5_000:][starts[:, None] + np.arange(11)])
    assert tail.gather(np.array([], dtype=np.int64), 11).shape == (0, 11)
    with pytest.raises(IndexError, match=r"outside the 5000 items 5000 to 10000 of .*ids\.npy"):
        tail.gather(np.array([4_990]), 11)
    with pytest.raises(IndexError, match=r"starting from -1 to -1: outside the 5000 items 5000 to 10000"):
        tail.gather(np.array([-1]), 11)
    whole = files.MappedVector.open(tmp_path / "ids.npy")
    with open(tmp_path / "ids.npy", "r+b") as f:  # shortened after it was opened
        f.truncate(f.seek(0, 2) - 100 * ids.itemsize)
    with pytest.raises(EOFError, match=r"ids\.npy ends before item 10000: .*restore it"):
        whole.gather(np.array([9_989]), 11)


def test_windows_from_another_text_or_vocabulary_are_refused_by_name(in_tmp):
    write_params(in_tmp, window={"seq_length": 10, "step": 3, "val_fraction": 0.2})
    files.write_npy(in_tmp / "data/vocab/ids.npy", (np.arange(1000) % 251).astype(np.uint8))
    window.main()
    with pytest.raises(UserError, match=r"data/windows/train.npy holds token ids beyond the vocabulary's 250 tokens"):
        load_split(Path("data/windows/train.npy"), {"tokens": ["x"] * 250}, "window")
    layout = json.loads((in_tmp / "data/windows/windows.json").read_text())
    (in_tmp / "data/windows/windows.json").write_text(json.dumps({**layout, "seq_length": 20}))
    with pytest.raises(UserError, match=r"data/windows/train.npy has no windows, or its windows.json describes another "
                                        r"text; run `dvc checkout data/windows` or `dvc repro -f window`"):
        load_split(Path("data/windows/train.npy"), {"tokens": ["x"] * 251}, "window")
    (in_tmp / "data/windows/windows.json").write_text(json.dumps({"seq_length": 10, "val": layout["val"]}))
    with pytest.raises(UserError, match=r"^data/windows/windows.json has no 'train' where the window layout of train "
                                        r"should be; run `dvc checkout data/windows` or `dvc repro -f window`$"):
        load_split(Path("data/windows/train.npy"), {"tokens": ["x"] * 251}, "window")
    (in_tmp / "data/windows/windows.json").unlink()
    with pytest.raises(UserError, match=r"^cannot read data/windows/windows.json \(.*No such file.*\); run `dvc checkout "
                                        r"data/windows` or `dvc repro -f window`$"):
        load_split(Path("data/windows/train.npy"), {"tokens": ["x"] * 251}, "window")


@pytest.mark.parametrize("seq_length, val_fraction, part", [(900, 0.1, "training"), (150, 0.1, "validation")])
def test_seq_length_must_be_smaller_than_the_text(seq_length, val_fraction, part):
    with pytest.raises(UserError, match=rf"window.seq_length = {seq_length} is not smaller than the {part} text"):
        windows.make_windows(np.zeros(1000, np.uint8), seq_length, 1, val_fraction)


# --- memory that does not grow with the corpus ----------------------------------------------

def test_the_data_stages_memory_does_not_grow_with_the_corpus(tmp_path):
    """Each data stage, a process of its own as under DVC, on one book of 1 MB and on 36 of
    them: its peak memory grows by far less than the 34 MiB the corpus grows by (books are read
    one at a time, text and token ids a piece at a time). Before, strip-boilerplate and
    encode-vocab held the whole corpus, several times over: they grew by hundreds of MiB."""
    import scale
    book = tmp_path / "book.txt"  # the curly apostrophe makes Python hold 2 bytes a character, as for real books
    book.write_bytes(gutenberg_file(book_body(200_000) + "\nit\u2019s the end."))
    one, many = (scale.run_data_stages(tmp_path / f"{n}-books", [book] * n, scale.stage_env()) for n in (1, 36))
    assert many["bytes"]["raw"] - one["bytes"]["raw"] > 34 * 2**20
    growth = {stage: many[stage]["peak_mib"] - one[stage]["peak_mib"] for stage in scale.DATA_STAGES}
    assert all(mib < 10 for mib in growth.values()), growth


# --- params ---------------------------------------------------------------------------------

def test_params_problems_are_listed_one_per_line(in_tmp):
    write_params(in_tmp, window={"seq_length": 0, "step": "ten", "val_fracton": 0.1})
    with pytest.raises(UserError) as err:
        params.read_params("window", window.PARAMS)
    lines = str(err.value).splitlines()
    assert "params.yaml: window.val_fracton is not a known param (did you mean 'val_fraction'?)" in lines
    assert "params.yaml: window.seq_length = 0 must be a whole number > 0" in lines
    assert "params.yaml: window.step = 'ten' must be a whole number > 0" in lines
    assert len(lines) == 3


def test_a_stage_with_bad_params_exits_non_zero_with_one_line_per_problem(tmp_path):
    write_params(tmp_path, window={"seq_length": -1})
    proc = subprocess.run([sys.executable, str(ROOT / "stages/window.py")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == "error: params.yaml: window.seq_length = -1 must be a whole number > 0\n"
    assert not (tmp_path / "data").exists()


def test_train_params_are_checked_before_tensorflow_loads(in_tmp):
    import train_lstm
    write_params(in_tmp, train_lstm={"layers": 0, "units": -8, "batch_size": 0, "dropout": 1.0, "learning_rate": 0,
                                     "distribute": "multi_gpu"})
    with pytest.raises(UserError) as err:
        train_lstm.main()
    assert str(err.value).splitlines() == [
        "params.yaml: train-lstm.layers = 0 must be a whole number > 0",
        "params.yaml: train-lstm.units = -8 must be a whole number > 0",
        "params.yaml: train-lstm.dropout = 1.0 must be a number >= 0 and < 1",
        "params.yaml: train-lstm.batch_size = 0 must be a whole number > 0",
        "params.yaml: train-lstm.learning_rate = 0 must be a number > 0",
        "params.yaml: train-lstm.distribute = 'multi_gpu' must be one of: one_device, mirrored, multi_worker"]


# --- atomic writes --------------------------------------------------------------------------

def test_an_interrupted_write_leaves_the_previous_file_and_no_partial(tmp_path):
    target = tmp_path / "out/corpus.txt"
    files.write_text(target, "complete")
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "complete"
    assert sorted(p.name for p in target.parent.iterdir()) == ["corpus.txt"]


def test_an_interrupted_directory_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with files.atomic_dir(tmp_path / "raw") as tmp:
            (tmp / "pg1.txt").write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_own_texts_are_kept_whole_with_lf_and_no_bom_beside_books(in_tmp):
    book = book_body(200, seed=3)
    raw = in_tmp / "data/raw"
    stage_dir(in_tmp, {5: gutenberg_file(book)})
    # A text that even mentions a marker line is not cut: only books have markers.
    (raw / "text-1-mine.txt").write_bytes("\ufeffMy Own Text\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r"
                                          "the end\r\n\r\n".encode("utf-8"))
    manifest = json.loads((raw / "manifest.json").read_text()) + [{"text": "mine.txt", "file": "text-1-mine.txt"}]
    (raw / "manifest.json").write_text(json.dumps(manifest))
    strip_boilerplate.main()
    corpus = (in_tmp / "data/clean/corpus.txt").read_text(encoding="utf-8")
    assert corpus == f"{book.lower()}\n\nmy own text\n*** start of the project gutenberg ebook x ***\nthe end\n"
    metrics = json.loads((in_tmp / "metrics/corpus.json").read_text())
    assert metrics["books"] == 1 and metrics["texts"] == 1 and metrics["characters"] == len(corpus)


def test_an_own_text_that_is_not_utf8_is_named_with_its_source(in_tmp):
    stage_dir(in_tmp, {})
    (in_tmp / "data/raw/text-1-latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (in_tmp / "data/raw/manifest.json").write_text(json.dumps([{"text": "latin1.txt", "file": "text-1-latin1.txt"}]))
    with pytest.raises(UserError, match=r"data/raw/text-1-latin1.txt is not UTF-8 text .*re-save latin1.txt as UTF-8"):
        strip_boilerplate.main()


def test_an_own_text_of_only_whitespace_is_refused(in_tmp):
    stage_dir(in_tmp, {})
    (in_tmp / "data/raw/text-1-blank.txt").write_bytes(b" " * 5000 + b"\r\n")
    (in_tmp / "data/raw/manifest.json").write_text(json.dumps([{"text": "blank.txt", "file": "text-1-blank.txt"}]))
    with pytest.raises(UserError, match=r"text-1-blank.txt \(blank.txt, from download-gutenberg.texts\) holds only"):
        strip_boilerplate.main()
