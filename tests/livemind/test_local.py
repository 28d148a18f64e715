"""Local backend: the KV cache reused across steps gives the same tokens and scores as recomputing."""

from __future__ import annotations

import torch

from frugalnn.methods.livemind import Config, LiveMindController, simulate_livemind
from frugalnn.methods.livemind.local import LocalBackend

SYS = {"role": "system", "content": "You are a helpful assistant."}


def _reference_greedy(model, tok, messages, n, prefix=""):
    """Independent reference: full forward passes, no cache at all, argmax each step."""
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefix
    ids = tok(text, add_special_tokens=False)["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([ids + out]), use_cache=False).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            out.append(nxt)
    return tok.decode(out, skip_special_tokens=True)


def test_cached_steps_match_uncached_greedy_and_prefill_only_new_tokens(tiny_lm, smol_tok):
    backend = LocalBackend(tiny_lm, smol_tok)
    m1 = [SYS, {"role": "user", "content": "The first sentence of a question."}]
    r1 = backend.chat(m1, max_new_tokens=6)
    assert r1 == _reference_greedy(tiny_lm, smol_tok, m1, 6)
    m2 = m1 + [{"role": "assistant", "content": r1}, {"role": "user", "content": " A second sentence."}]
    r2 = backend.chat(m2, max_new_tokens=6)
    assert r2 == _reference_greedy(tiny_lm, smol_tok, m2, 6)
    # what was reused is exactly the common token prefix with the first call's cached sequence
    full2 = smol_tok(
        smol_tok.apply_chat_template(m2, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )["input_ids"]
    first = smol_tok(
        smol_tok.apply_chat_template(m1, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )["input_ids"]
    stats = backend.last_stats
    assert stats["prompt_tokens"] == len(full2)
    assert len(first) <= stats["reused_tokens"] < len(full2)
    assert stats["prefilled_tokens"] == len(full2) - stats["reused_tokens"]


def test_forced_prefix_and_avoid_start(tiny_lm, smol_tok):
    backend = LocalBackend(tiny_lm, smol_tok)
    m = [SYS, {"role": "user", "content": "Say something."}]
    assert backend.chat(m, 5) == _reference_greedy(tiny_lm, smol_tok, m, 5)
    got = "".join(p.text for p in backend.stream(m, max_new_tokens=5, prefix="action inference."))
    assert got == _reference_greedy(tiny_lm, smol_tok, m, 5, prefix="action inference.")
    first = next(iter(backend.stream(m, max_new_tokens=1))).text
    banned = "".join(p.text for p in backend.stream(m, max_new_tokens=1, avoid_start=first.strip()))
    assert banned.strip() != first.strip()


def test_choose_compares_the_models_scores(tiny_lm, smol_tok):
    backend = LocalBackend(tiny_lm, smol_tok)
    m = [SYS, {"role": "user", "content": "A partial question about"}]
    word, _ = backend.choose(m, "action", ["inference", "wait"], [0.0, 0.0])
    text = smol_tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) + "action"
    ids = smol_tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(tiny_lm(torch.tensor([ids])).logits[0, -1].double(), -1)
    ref = {
        w: logp[smol_tok(" " + w, add_special_tokens=False)["input_ids"][0]].item()
        for w in ("inference", "wait")
    }
    for w in ref:
        assert abs(backend.last_scores[w] - ref[w]) < 1e-4
    assert word == max(ref, key=ref.get)
    # a bias large enough flips the choice
    other = "wait" if word == "inference" else "inference"
    flipped, _ = backend.choose(
        m, "action", ["inference", "wait"], [0.0, 1e3] if other == "wait" else [1e3, 0.0]
    )
    assert flipped == other


def test_livemind_on_a_local_model_reuses_the_cache_for_the_final_answer(tiny_lm, smol_tok):
    cfg = Config(chars_per_minute=600.0, max_inference_tokens=4, max_new_tokens=4)
    backend = LocalBackend(tiny_lm, smol_tok)
    prompt = "A string is attached to a speaker. It vibrates at 60 Hz. No standing waves appear. Why is that?"
    run = simulate_livemind(LiveMindController(cfg, backend), prompt, " Options are:\n(A): x\n(B): y\n")
    assert len(run.steps) >= 2 and run.final_tokens <= 4
    steps_new = [s.stats["prefilled_tokens"] for s in run.steps]
    assert max(steps_new) < 60  # each step prefills its new sentence, not the history
    assert run.final_stats["reused_tokens"] > run.final_stats["prefilled_tokens"]


def test_cpu_clock_reports_thread_time_beside_wall_time(tiny_lm, smol_tok):
    """With the CPU-time clock a piece's seconds are this thread's CPU time, never more than its wall time."""
    import time

    backend = LocalBackend(tiny_lm, smol_tok, cpu_clock=True)
    assert backend.clock is time.thread_time
    pieces = list(backend.stream([SYS, {"role": "user", "content": "Hello there."}], max_new_tokens=4))
    assert all(p.wall_s is not None and 0.0 <= p.seconds <= p.wall_s + 1e-3 for p in pieces)
    assert LocalBackend(tiny_lm, smol_tok).clock is time.perf_counter


def test_choose_letter_right_after_the_prefix(tiny_lm, smol_tok):
    """sep='' scores the letter token that continues "The answer is (" directly (float64 reference)."""
    backend = LocalBackend(tiny_lm, smol_tok)
    m = [SYS, {"role": "user", "content": "Pick one. Options are:\n(A): x\n(B): y\n(C): z\n"}]
    word, _ = backend.choose(m, "The answer is (", list("ABC"), [0.0] * 3, sep="")
    text = smol_tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) + "The answer is ("
    ids = smol_tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(tiny_lm.double()(torch.tensor([ids])).logits[0, -1].double(), -1)
    tiny_lm.float()
    ref = {w: logp[smol_tok(w, add_special_tokens=False)["input_ids"][0]].item() for w in "ABC"}
    assert all(abs(backend.last_scores[w] - ref[w]) < 1e-4 for w in ref)
    assert word == max(ref, key=ref.get)
