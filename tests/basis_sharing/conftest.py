import pytest
from transformers import AutoTokenizer

from frugalnn.core import llm
from frugalnn.errors import MissingAssetError


@pytest.fixture(scope="session")
def smol_tokenizer():
    """SmolLM2's tokenizer from the cached HF folder of the bundled model (saved beside tiny models)."""
    try:
        folder = llm._bundled_folder("smollm2")
    except MissingAssetError:
        pytest.fail("smollm2 asset not installed; run make assets")
    return AutoTokenizer.from_pretrained(str(folder))
