"""Files: outputs appear complete or not at all. Everything is written to a hidden temporary name
in the same directory and renamed into place only once it is whole.

Large inputs and outputs are read and written in pieces of CHUNK bytes of text or token ids, so
a stage's memory does not grow with the corpus: text through `text_pieces`, arrays through
`MappedVector` (reading a .npy: in mapped pieces, or the windows of a batch) and `write_npy`, `write_npz`
(writing)."""

from __future__ import annotations

import codecs
import contextlib
import glob
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np

# Bytes or items per piece. Small, so that what is made from a piece (its characters, their
# code points, their int64 positions: up to 64 KiB) comes and goes within the C allocator's
# heap, reused piece after piece. Pieces of 256 KiB, whose temporaries of a few MiB vary in
# size from piece to piece, left the heap fragmented: encode-vocab grew by 50 MiB over 100 MB
# of text. This size costs no speed: the per-piece overhead is still small beside the work.
CHUNK = 1 << 13


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sweep_partials(path: Path) -> None:
    """Remove what an earlier, killed run left half-written beside `path`."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_partials(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary directory beside `path`; on success it takes the place of `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_partials(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, binary: bool = False):
    """An open file (UTF-8 text, or binary) for an output written piece by piece: it replaces
    `path` once the block ends without an error, closed."""
    with atomic_path(path) as tmp, (open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8")) as f:
        yield f


def write_text(path, content: str) -> None:
    with atomic_file(path) as f:
        f.write(content)


def write_json(path, data) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def text_pieces(path, size: int = CHUNK) -> Iterator[str]:
    """The UTF-8 text at `path`, decoded `size` bytes at a time, newlines read as open() reads
    them. Not through open()'s text mode: it decodes 8 KiB at a time and joins the bits, which
    leaves the C heap so fragmented that reading 100 MB grows the process by some 20 MiB."""
    decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")(), translate=True)
    with open(path, "rb") as f:
        while True:
            data = f.read(size)
            if piece := decoder.decode(data, final=not data):
                yield piece
            if not data:
                return


@dataclass(frozen=True)
class MappedVector:
    """A 1-D array in a .npy file, read piece by piece, each piece memory-mapped only while it is
    used, or a batch's windows at a time (gather). The pages a map has read count in the
    process' resident memory until it is unmapped, so one map of the whole file would make the
    process as large as the file. Slicing gives another MappedVector and reads nothing."""
    path: Path
    dtype: np.dtype
    offset: int  # of the data, in bytes
    start: int
    stop: int

    @classmethod
    def open(cls, path) -> MappedVector:
        """Raises OSError, ValueError or EOFError when `path` is not a whole .npy file of one dimension."""
        whole = np.load(path, mmap_mode="r")  # reads and checks the header (and the file's length)
        if whole.ndim != 1:
            raise ValueError(f"it holds an array of shape {whole.shape}, not a 1-D array")
        return cls(Path(path), whole.dtype, whole.offset, 0, len(whole))

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, items: slice) -> MappedVector:
        picked = range(self.start, self.stop)[items]
        if not isinstance(items, slice) or picked.step != 1:
            raise TypeError("a MappedVector takes slices with step 1 only")
        return MappedVector(self.path, self.dtype, self.offset, picked.start, picked.stop)

    def _mapped(self, first: int, count: int) -> np.memmap:
        return np.memmap(self.path, self.dtype, mode="r", offset=self.offset + first * self.dtype.itemsize,
                         shape=(count,))

    def pieces(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        for first in range(self.start, self.stop, size):
            yield self._mapped(first, min(size, self.stop - first))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """np.asarray(a slice): its items, copied out of the map (for a short slice: this reads it all)."""
        items = np.array(self._mapped(self.start, len(self))) if len(self) else np.empty(0, self.dtype)
        return items if dtype is None else items.astype(dtype)

    def gather(self, starts: np.ndarray, length: int) -> np.ndarray:
        """The spans of `length` items from each of `starts`, each read from the file by itself
        (pread into its row), as the rows of a new array. Not
        through a map: a fault in a map brings the whole cached folio around it into the process
        (up to 2 MiB on ext4), so one map of a batch's scattered windows held some 70 MiB while
        it lived. Reads leave only the rows in the process, and the file in the page cache."""
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) and (starts.min() < 0 or starts.max() + length > len(self)):
            raise IndexError(f"spans of {length} items starting from {starts.min()} to {starts.max()}: outside "
                             f"the {len(self)} items {self.start} to {self.stop} of {self.path}")
        rows = np.empty((len(starts), length), self.dtype)
        size = self.dtype.itemsize
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for row, first in zip(rows, (self.start + starts).tolist()):
                if os.preadv(fd, [row], self.offset + first * size) != row.nbytes:
                    raise EOFError(f"{self.path} ends before item {first + length}: it was shortened while "
                                   f"being read; restore it (`dvc checkout`) and run again")
        finally:
            os.close(fd)
        return rows


def spans(values, starts: np.ndarray, length: int) -> np.ndarray:
    """The spans values[s : s + length] for each s of `starts`, as the rows of a new array: read
    from the file for a MappedVector (gather), indexed in memory for an array."""
    if isinstance(values, MappedVector):
        return values.gather(starts, length)
    return np.asarray(values[np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length)])


def pieces_of(values, size: int = CHUNK) -> Iterable[np.ndarray]:
    """A MappedVector's pieces, or an array in memory whole."""
    return values.pieces(size) if isinstance(values, MappedVector) else [np.asarray(values)]


class NpyFile:
    """A 1-D array in a .npy file open for reading and seeking (git's or DVC's copy at another
    revision, which has no path of ours to map), read a slice at a time by seeking, so that a
    few windows of a large text cost a few small reads."""

    def __init__(self, f):
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f".npy format version {version} is not read here")
        shape, fortran, self.dtype = read_header(f)
        if len(shape) != 1 or fortran or self.dtype.hasobject:
            raise ValueError(f"it holds an array of shape {shape}, not a 1-D array of numbers")
        self.file, self.offset, self.length = f, f.tell(), shape[0]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, items: slice) -> np.ndarray:
        picked = range(self.length)[items]
        if not isinstance(items, slice) or picked.step != 1:
            raise TypeError("an NpyFile takes slices with step 1 only")
        self.file.seek(self.offset + picked.start * self.dtype.itemsize)
        data = self.file.read(len(picked) * self.dtype.itemsize)
        if len(data) != len(picked) * self.dtype.itemsize:
            raise EOFError(f"the file ends before item {picked.stop:,} of {self.length:,}")
        return np.frombuffer(data, dtype=self.dtype)


class Pieces(NamedTuple):
    """An array to write piece by piece: its dtype, its shape, and its pieces along the first axis."""
    dtype: np.dtype
    shape: tuple
    pieces: Iterable[np.ndarray]


def as_pieces(values, size: int = CHUNK) -> Pieces:
    """An array to write, as Pieces: an ndarray or a scalar (one piece), a MappedVector, a range
    (int64, made piece by piece), or Pieces already."""
    if isinstance(values, Pieces):
        return values._replace(dtype=np.dtype(values.dtype))
    if isinstance(values, MappedVector):
        return Pieces(values.dtype, (len(values),), values.pieces(size))
    if isinstance(values, range):
        parts = (values[i:i + size] for i in range(0, len(values), size))
        return Pieces(np.dtype(np.int64), (len(values),),
                      (np.arange(r.start, r.stop, r.step, dtype=np.int64) for r in parts))
    values = np.asarray(values)
    return Pieces(values.dtype, values.shape, [values])


def write_npy_pieces(f, values) -> None:
    """Write `values` (anything as_pieces takes) to the open binary file `f` as a .npy file, one
    piece at a time: byte for byte what np.save writes."""
    dtype, shape, pieces = as_pieces(values)
    if dtype.hasobject:
        raise TypeError("arrays of Python objects are not written here: they would need pickling")
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                             "shape": tuple(int(n) for n in shape)})
    written = 0
    for piece in pieces:
        f.write(np.ascontiguousarray(piece, dtype=dtype).tobytes())
        written += piece.size
    if written != int(np.prod(shape)):
        raise ValueError(f"wrote {written:,} items for an array of shape {shape}")


def write_npy(path, values) -> None:
    """Atomically write `values` (anything as_pieces takes) as the .npy file `path`, piece by piece."""
    with atomic_file(path, binary=True) as f:
        write_npy_pieces(f, values)


def write_npz(path, **arrays) -> None:
    """Atomically write `arrays` (each anything as_pieces takes) as the .npz file `path`, piece
    by piece: byte for byte what np.savez writes (for arrays in C order), so np.load reads it."""
    with atomic_file(path, binary=True) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as npz:
        for name, values in arrays.items():
            with npz.open(f"{name}.npy", "w", force_zip64=True) as member:
                write_npy_pieces(member, values)


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
