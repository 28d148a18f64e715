"""Data sets, all loaded from offline files: images (``images``), text (``text``) and question
answering (``qa``). Each data set carries an ``identity`` (source file hashes and split) for records.
"""

from frugalnn.core.data.images import (
    DATASETS,
    IMAGE_DATASETS,
    DatasetInfo,
    ImageData,
    dataset_info,
    flips_valid,
    load_cifar,
    load_digits,
    load_fashion_mnist,
    load_idx_pair,
    load_image_data,
    load_mnist5k,
    read_idx,
)
from frugalnn.core.data.qa import MMLUQuestion, load_mmlu
from frugalnn.core.data.text import (
    AUSTEN_NOVELS,
    TEXT_SOURCES,
    TextData,
    load_text,
    sample_windows,
    token_windows,
)

__all__ = [
    "AUSTEN_NOVELS",
    "DATASETS",
    "IMAGE_DATASETS",
    "TEXT_SOURCES",
    "DatasetInfo",
    "ImageData",
    "MMLUQuestion",
    "TextData",
    "dataset_info",
    "flips_valid",
    "load_cifar",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_pair",
    "load_image_data",
    "load_mmlu",
    "load_mnist5k",
    "load_text",
    "read_idx",
    "sample_windows",
    "token_windows",
]
