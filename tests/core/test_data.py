import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from frugalnn.core import data
from frugalnn.errors import ConfigError, DataError, MissingAssetError


def write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    write_idx(path, arr, compress)
    np.testing.assert_array_equal(data.read_idx(path), arr)


def test_idx_truncated_and_corrupt(tmp_path):
    arr = np.zeros((10, 28, 28), np.uint8)
    path = tmp_path / "t.idx"
    write_idx(path, arr)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(path)
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(DataError, match="not an IDX"):
        data.read_idx(bad)
    gz = tmp_path / "c.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 20)[:-8])
    with pytest.raises(DataError):
        data.read_idx(gz)


def test_idx_folder_loader(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 50), ("t10k", 20)):
        write_idx(
            tmp_path / f"{split}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            True,
        )
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 3).astype(np.uint8), True)
    d = data.load_image_data("idx", tmp_path, val_size=10, seed=3)
    assert d.x_train.shape == (40, 1, 28, 28) and d.x_val.shape == (10, 1, 28, 28) and d.num_classes == 3
    # normalised with the training mean/std
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-2
    again = data.load_image_data("idx", tmp_path, val_size=10, seed=3)
    assert torch.equal(d.x_val, again.x_val), "splits must be deterministic for a seed"
    other = data.load_image_data("idx", tmp_path, val_size=10, seed=4)
    assert not torch.equal(d.y_val, other.y_val) or not torch.equal(d.x_val, other.x_val)


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_loader(tmp_path, classes):
    rng = np.random.default_rng(0)
    key = "labels" if classes == 10 else "fine_labels"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if classes == 10 else ["train", "test"]
    for name in names:
        batch = {
            "data": rng.integers(0, 256, (12, 3072), dtype=np.uint8),
            key: list(rng.integers(0, classes, 12)),
        }
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    d = data.load_image_data(f"cifar{classes}", tmp_path, val_size=4)
    n_train = 12 * (5 if classes == 10 else 1)
    assert d.x_train.shape == (n_train - 4, 3, 32, 32) and d.x_test.shape == (12, 3, 32, 32)
    assert d.num_classes == classes
    # the pixel layout: channel-major rows of 32x32 (CIFAR's documented format)
    raw = pickle.loads((tmp_path / names[-1]).read_bytes())["data"][0].reshape(3, 32, 32) / 255.0
    mean = np.array(d.identity["mean"]).reshape(3, 1, 1)
    std = np.array(d.identity["std"]).reshape(3, 1, 1)
    np.testing.assert_allclose(d.x_test[0].numpy(), (raw - mean) / std, rtol=1e-4, atol=1e-4)


def test_cifar_corrupt(tmp_path):
    (tmp_path / "train").write_bytes(b"not a pickle")
    (tmp_path / "test").write_bytes(b"")
    with pytest.raises(DataError, match="truncated, not a pickle"):
        data.load_image_data("cifar100", tmp_path)


def test_cifar_payload_is_refused_not_run(tmp_path):
    """A pickle that would call os.system on load is data that names code: refused before the call."""
    import os

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "train").write_bytes(pickle.dumps({"data": Payload(), "fine_labels": [0]}))
    (tmp_path / "test").write_bytes(pickle.dumps({"data": [], "fine_labels": []}))
    with pytest.raises(DataError, match=r"refers to (posix|os)\.system"):
        data.load_image_data("cifar100", tmp_path)
    assert not marker.exists()


def test_fashion_mnist_real():
    d = data.load_fashion_mnist(val_size=5000, seed=0)
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (55000, 5000, 10000)
    assert d.num_classes == 10 and d.in_channels == 1 and d.image_size == 28
    assert torch.bincount(d.y_test).tolist() == [1000] * 10
    assert set(d.identity["sha256"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }


def test_small_image_sets():
    m = data.load_image_data("mnist5k")
    assert len(m.x_train) + len(m.x_val) + len(m.x_test) == 5000
    d = data.load_image_data("digits")
    assert d.image_size == 8 and len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797


def test_unknown_names():
    with pytest.raises(ConfigError, match="choose one of"):
        data.load_image_data("imagenet")
    with pytest.raises(ConfigError, match="needs a folder: pass root=PATH"):
        data.load_image_data("cifar10")
    with pytest.raises(ConfigError, match="choose one of"):
        data.load_text("gutenberg:moby")


def test_missing_asset_names_the_fix(empty_cache):
    with pytest.raises(MissingAssetError, match="frugalnn assets fetch"):
        data.load_fashion_mnist()
    with pytest.raises(MissingAssetError, match="frugalnn assets fetch"):
        data.load_text("austen:emma")


def test_austen_and_jargon():
    emma = data.load_text("austen:emma")
    assert emma.text.startswith("EMMA\n\nBy Jane Austen") and 800_000 < len(emma.text) < 950_000
    pp = data.load_text("austen:prideprejudice").text
    assert "It is a truth universally acknowledged" in pp
    with pytest.raises(ConfigError, match="prideprejudice"):
        data.load_text("austen:ulysses")
    assert "hacker" in data.load_text("jargon").text[:200_000].lower()


def test_wikitext_file(tmp_path):
    folder = tmp_path / "wikitext-2-raw"
    folder.mkdir()
    (folder / "wiki.train.raw").write_text(" = Valkyria Chronicles III = \n\n Senjō no Valkyria 3 \n")
    text = data.load_text(f"wikitext2:{folder}")
    assert "Valkyria" in text.text and text.identity["chars"] == len(text.text)
    with pytest.raises(DataError, match="does not exist"):
        data.load_text(f"wikitext2:{tmp_path / 'nope.raw'}")


def test_token_windows():
    w = data.token_windows(range(10), 3)
    assert w.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert data.token_windows(range(10), 3, limit_tokens=7).shape == (2, 3)
    with pytest.raises(DataError, match="fewer than one window"):
        data.token_windows(range(2), 3)


def test_mmlu():
    questions, identity = data.load_mmlu()
    assert len(questions) == 14042 and identity["dropped"] == 2
    assert {q.answer for q in questions} == {"A", "B", "C", "D"}
    assert len({q.subject for q in questions}) == 57
    assert all(len(q.choices) == 4 for q in questions[:100])


def test_dataset_table_gives_defaults_and_the_flip_rule():
    assert set(data.DATASETS) == set(data.IMAGE_DATASETS)
    assert data.flips_valid("fashion-mnist") and data.flips_valid("cifar100")
    assert not data.flips_valid("digits") and not data.flips_valid("mnist5k") and not data.flips_valid("mine")
    d = data.load_image_data("digits")
    assert len(d.x_val) == data.DATASETS["digits"].val_size == 200


def test_calibration_sampler_is_the_seeded_permutation_and_leaves_global_state_alone():
    windows = torch.arange(433 * 2).view(433, 2)
    torch.manual_seed(7)
    before = torch.rand(3)
    torch.manual_seed(7)
    got = data.sample_windows(windows, 64, 2023)
    assert torch.equal(torch.rand(3), before)  # the global generator did not move
    torch.manual_seed(2023)  # reference: the documented recipe with the global generator
    order = torch.randperm(433)
    assert torch.equal(got, windows[order[:64]])
    held_out = data.sample_windows(windows, 10, 2023, skip=64)
    assert torch.equal(held_out, windows[order[64:74]])
    assert not set(held_out[:, 0].tolist()) & set(got[:, 0].tolist())
    with pytest.raises(DataError, match="434 windows asked for, the text has 433"):
        data.sample_windows(windows, 370, 2023, skip=64)
