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
