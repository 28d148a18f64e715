"""A small 4-bit encoder searched once per session (seconds)."""

import pytest

from frugalnn.methods.encoding_mac import EncodingConfig, search


@pytest.fixture(scope="session")
def enc4():
    cfg = EncodingConfig(bits=4, threshold=0.2, kept_bits=12, outputs=32, rows=64, generations=15, seed=3)
    encoder, _ = search(cfg, progress=False)
    return encoder
