import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A FRUGALNN_CACHE with nothing installed: asset look-ups must fail with the fix in the message."""
    monkeypatch.setenv("FRUGALNN_CACHE", str(tmp_path / "empty-cache"))
    return tmp_path / "empty-cache"


@pytest.fixture(scope="session")
def smol_tokenizer():
    """SmolLM2's tokenizer (with its chat template) from the cached HF folder of the bundled model."""
    from transformers import AutoTokenizer

    from frugalnn.core import llm
    from frugalnn.errors import MissingAssetError

    try:
        folder = llm._bundled_folder("smollm2")
    except MissingAssetError:
        pytest.fail("smollm2 asset not installed; run frugalnn assets fetch")
    return AutoTokenizer.from_pretrained(str(folder))
