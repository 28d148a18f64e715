import json

import numpy as np
import pytest

from frugalnn.errors import CheckpointError, ConfigError, DataError
from frugalnn.methods.encoding_mac import Encoder, EncodingConfig, exact_encoder, search
from frugalnn.methods.encoding_mac.cgp import (
    Layout,
    Problem,
    fitness,
    mutate,
    partial_product_genome,
    random_genome,
)

OPS = {
    "NAND": lambda a, b: 1 - (a & b),
    "NOR": lambda a, b: 1 - (a | b),
    "AND": lambda a, b: a & b,
    "OR": lambda a, b: a | b,
    "XOR": lambda a, b: a ^ b,
    "XNOR": lambda a, b: 1 - (a ^ b),
    "NOT": lambda a, b: 1 - a,
    "WIRE": lambda a, b: a,
}


def explicit_lut(enc: Encoder) -> np.ndarray:
    """Pair by pair, gate by gate, in plain Python integers."""
    n = 1 << enc.bits
    lut = np.zeros((n, n), dtype=np.int64)
    for x in range(n):
        for w in range(n):
            sig = {f"x{k}": (x >> k) & 1 for k in range(enc.bits)} | {
                f"w{k}": (w >> k) & 1 for k in range(enc.bits)
            }
            sig["one"] = 1
            for g in enc.gates:
                sig[g["id"]] = OPS[g["op"]](sig[g["in"][0]], sig[g["in"][1]])
            lut[x, w] = sum(s * sig[r] for r, s in zip(enc.kept, enc.weights))
    return lut


def test_lut_equals_explicit_gate_evaluation(enc4):
    assert np.array_equal(enc4.lut, explicit_lut(enc4))
    v = np.where(np.arange(16) >= 8, np.arange(16) - 16, np.arange(16))
    assert enc4.max_re == pytest.approx(np.abs(enc4.lut - np.outer(v, v)).max() / 64)
    assert enc4.max_re <= 0.2


def test_exact_encoder_is_the_product_table():
    enc = exact_encoder(4)
    v = np.where(np.arange(16) >= 8, np.arange(16) - 16, np.arange(16))
    assert np.array_equal(enc.lut, np.outer(v, v)) and enc.max_re == 0.0


def test_fitness_matches_closed_form_ridge_and_incremental_path():
    rng = np.random.default_rng(1)
    lay = Layout(8, 32, 2, 2, 16)
    prob = Problem.build(4)
    g = random_genome(lay, rng)
    fit, normal = fitness(g, lay, prob, 10, 0.1, 0.1)
    # independent float64 reference of s = (B B^T + 0.1 I)^-1 B v from unpacked bits
    codes = np.arange(256)
    x, w = codes >> 4, codes & 15
    from frugalnn.methods.encoding_mac.cgp import evaluate_nodes, unpack_rows

    vals = evaluate_nodes(g, lay, prob.inputs)
    mat = np.vstack([unpack_rows(vals[g.out], 256), np.ones((1, 256))]).astype(np.float64)
    vv = np.where(x >= 8, x - 16, x) * np.where(w >= 8, w - 16, w)
    s = np.linalg.solve(mat @ mat.T + 0.1 * np.eye(17), mat @ vv)
    kept = np.sort(np.argsort(-np.abs(s), kind="stable")[:10])
    assert fit.kept == kept.tolist()
    np.testing.assert_allclose(fit.weights, s[kept], rtol=1e-9, atol=1e-9)
    assert fit.max_re == pytest.approx(np.abs(np.rint(s[kept]) @ mat[kept] - vv).max() / 64)
    for _ in range(5):
        child = mutate(g, lay, 0.05, rng)
        inc, _ = fitness(child, lay, prob, 10, 0.1, 0.1, normal)
        full, _ = fitness(child, lay, prob, 10, 0.1, 0.1)
        assert inc == full


def test_partial_product_seed_is_exact():
    lay = Layout(8, 64, 2, 2, 32)
    fit, _ = fitness(
        partial_product_genome(lay, 4, np.random.default_rng(0)), lay, Problem.build(4), 16, 0.01, 0.1
    )
    assert fit.max_re == 0.0 and fit.area == pytest.approx(16 * 4 / 3)


def test_killed_search_resumes_to_the_same_result(tmp_path):
    cfg = EncodingConfig(bits=3, threshold=0.2, kept_bits=7, outputs=16, rows=24, generations=12,
                         checkpoint_every=2, seed=5, init="random")  # fmt: skip
    whole, rec_whole = search(cfg, tmp_path / "whole", progress=False)
    part, rec_part = search(cfg, tmp_path / "killed", progress=False, _stop_after=5)
    assert not rec_part["finished"]
    state = json.loads((tmp_path / "killed" / "search_state.json").read_text())
    assert state["generation"] == 4  # the last checkpoint before the kill
    resumed, rec_resumed = search(cfg, tmp_path / "killed", progress=False)
    assert rec_resumed["finished"]
    assert resumed.to_json() == whole.to_json()
    assert rec_resumed["history"] == rec_whole["history"]


def test_state_of_other_settings_is_refused(tmp_path):
    cfg = EncodingConfig(
        bits=3, threshold=0.2, kept_bits=7, outputs=16, rows=24, generations=2, init="random"
    )
    search(cfg, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="other settings"):
        search(EncodingConfig(**{**cfg.__dict__, "seed": 9}), tmp_path, progress=False)


def test_encoder_file_round_trip_and_bad_files(enc4, tmp_path):
    enc4.save(tmp_path / "e")
    back = Encoder.load(tmp_path / "e", bits=4)
    assert np.array_equal(back.lut, enc4.lut) and back.gates == enc4.gates
    with pytest.raises(ConfigError, match="4-bit"):
        Encoder.load(tmp_path / "e", bits=8)
    data = json.loads((tmp_path / "e" / "encoder.json").read_text())
    data["lut"][0][0] += 1
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="corrupt"):
        Encoder.load(tmp_path / "bad.json")
    (tmp_path / "trunc.json").write_text((tmp_path / "e" / "encoder.json").read_text()[:100])
    with pytest.raises(DataError, match="not valid JSON"):
        Encoder.load(tmp_path / "trunc.json")
    data["bits"] = 9
    (tmp_path / "b9.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="2..8"):
        Encoder.load(tmp_path / "b9.json")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("bits", 1, "bits"),
        ("bits", 9, "bits"),
        ("threshold", 0.0, "threshold"),
        ("threshold", 1.0, "threshold"),
    ],
)
def test_bad_config(field, value, match):
    from frugalnn.core.config import FieldError

    with pytest.raises(FieldError, match=match):
        EncodingConfig(**{field: value}).validate()
