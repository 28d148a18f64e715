"""Atomic writes: a reader never sees a half-written file or folder, and a crash leaves the old one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from frugalnn.errors import ConfigError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(folder: str | os.PathLike) -> None:
    """0755 / 0644 under the umask for a folder and its entries (mkdtemp gives 0700, some writers 0600)."""
    folder = Path(folder)
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.iterdir():
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # the usual permissions, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON: a NaN or infinite number is written as null (no ``NaN`` a JSON reader rejects)."""
    text = json.dumps(finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None, containers walked."""
    import math

    import numpy as np

    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return finite(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def remove_stale_siblings(path: str | os.PathLike) -> list[Path]:
    """Remove what killed runs into ``path`` left beside it: ``.NAME.*.partial`` folders, ``.NAME.*.tmp``
    files and a ``.NAME.old`` backup. -> the removed entries."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [
        p
        for p in path.parent.iterdir()
        if p.name.startswith(f".{path.name}.")
        and (p.name.endswith((".partial", ".tmp")) or p.name == f".{path.name}.old")
    ]
    for entry in stale:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    return stale


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it is renamed to ``path``, on error removed.

    An existing empty ``path`` is replaced; a non-empty one is an error unless ``overwrite`` (nothing
    the user had is lost). Entries a killed run left beside ``path`` are removed first.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {path} is a file; choose a folder path")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise ConfigError(
            f"output folder {path} already exists and is not empty; choose another folder, remove it "
            "or pass overwrite=True"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # the usual permissions, not mkdtemp's 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        backup = path.with_name(f".{path.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(path, backup)
        os.replace(tmp, path)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, path)
