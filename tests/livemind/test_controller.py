"""The controller on the scripted backend: the virtual clock gives exactly the hand-computed latency.

Typing at 60 characters/minute puts character i at i seconds. PROMPT has three sentences of 17, 20
and 11 characters (48 in all), so the first sentence is complete (the next one begun) at 19 s, the
second at 39 s, and the input ends at 48 s.
"""

from __future__ import annotations

import pytest

from frugalnn.errors import ConfigError
from frugalnn.methods.livemind import (
    BackendError,
    Config,
    LiveMindController,
    ScriptedBackend,
    chat,
    complete_prompt,
    simulate_baseline,
    simulate_livemind,
)

PROMPT = "Alpha beta gamma. Delta epsilon zeta. Eta theta."
TAIL = " Options are:\n(A): a\n(B): b\n"
ANSWER = "The answer is (B) because"  # stops at "(B)": 4 tokens
CFG = Config(chars_per_minute=60.0)


def test_prompt_layout_used_by_these_tests():
    assert len(PROMPT) == 48 and PROMPT.index(" Delta") == 17 and PROMPT.index(" Eta") == 37


def test_latency_is_exactly_what_the_clock_predicts():
    b = ScriptedBackend(["x y z", "x y z", ANSWER], token_s=0.125, prefill_s=0.25, choose_s=0.5)
    run = simulate_livemind(LiveMindController(CFG, b), PROMPT, TAIL)
    assert [(s.start_s, s.seconds, s.kind) for s in run.steps] == [
        (19.0, 1.125, "inference"),
        (39.0, 1.125, "inference"),
    ]
    assert run.typing_s == 48.0 and run.overhead_s == 0.0
    assert run.final_tokens == 4 and run.final_reason == "answer"
    assert run.latency_s == 0.25 + 4 * 0.125
    assert run.generation_s == 2 * 1.125 + 0.75
    final = b.calls[-1][1]
    assert final[-1]["content"] == " Eta theta." + TAIL + "\n\n" + CFG.answer_format
    assert final[2] == {"role": "assistant", "content": "action inference. x y z"}


def test_baseline_latency_is_its_whole_answer():
    b = ScriptedBackend([ANSWER], token_s=0.125, prefill_s=1.0)
    run = simulate_baseline(b, PROMPT, TAIL, CFG)
    assert run.latency_s == 1.0 + 4 * 0.125 and run.overhead_s == 0.0 and run.steps == []
    assert b.calls[0][1][-1]["content"] == PROMPT + TAIL + "\n\n" + CFG.answer_format


def test_step_running_into_the_end_of_typing_is_cut_at_the_next_token():
    long = " ".join(f"w{i}" for i in range(100))  # distinct words: no repetition loop
    b = ScriptedBackend(["x y z", long, ANSWER], token_s=0.5, prefill_s=0.25, choose_s=0.5)
    run = simulate_livemind(LiveMindController(CFG, b), PROMPT, TAIL)
    # step 2 starts at 39 with 9 s left: 0.5 + 0.25 + 0.5 n >= 9 first at n = 17 -> ends at 48.25
    assert run.steps[1].kind == "cut" and run.steps[1].tokens == 17 and run.steps[1].seconds == 9.25
    assert run.overhead_s == 0.25
    assert run.latency_s == 0.25 + (0.25 + 4 * 0.5)
    # the cut step's segment is folded into the final prompt, its partial inference dropped
    assert b.calls[-1][1][-1]["content"].startswith(" Delta epsilon zeta. Eta theta.")
    assert all("w1 w2" not in m["content"] for m in b.calls[-1][1])


def test_step_that_cannot_fit_is_skipped():
    b = ScriptedBackend([ANSWER], token_s=0.125, choose_s=15.0, choices=["wait"])
    run = simulate_livemind(LiveMindController(CFG, b), PROMPT, TAIL)
    # step 1 (19 s -> 34 s) waits; at 39 s only 9 s are left, less than a 15 s choice: skipped
    assert [(s.start_s, s.kind) for s in run.steps] == [(19.0, "wait")]
    assert run.overhead_s == 0.0 and run.latency_s == 4 * 0.125
    assert b.calls[-1][1][-1]["content"].startswith(PROMPT)


def test_failing_step_is_retried_then_skipped_and_the_answer_still_comes():
    b = ScriptedBackend(["x y z", ANSWER], token_s=0.125, fail_calls=[0], fail_s=0.5)
    run = simulate_livemind(LiveMindController(CFG, b), PROMPT, TAIL)
    assert run.steps[0].kind == "inference" and run.steps[0].seconds == 0.5 + 3 * 0.125
    b = ScriptedBackend([ANSWER], token_s=0.125, fail_calls=[0, 1, 2, 3], fail_s=1.0)
    run = simulate_livemind(
        LiveMindController(Config(chars_per_minute=60.0, step_retries=1), b), PROMPT, TAIL
    )
    assert [s.kind for s in run.steps] == ["failed", "failed"] and run.steps[0].seconds == 2.0
    assert "scripted failure" in run.steps[0].error and run.answer.startswith("The answer is (B")


def test_final_answer_retried_after_a_timeout():
    b = ScriptedBackend([ANSWER], token_s=0.125, choices=["wait"], fail_calls=[2], fail_s=3.0)
    run = simulate_livemind(LiveMindController(CFG, b), PROMPT, TAIL)
    assert run.latency_s == 3.0 + 4 * 0.125 and run.answer == "The answer is (B)"
    with pytest.raises(BackendError):
        complete_prompt(ScriptedBackend([ANSWER], fail_calls=[0, 1]), PROMPT, Config(step_retries=1))


def test_empty_and_one_character_prompts():
    ctrl = LiveMindController(CFG, ScriptedBackend([ANSWER], token_s=0.125))
    with pytest.raises(ConfigError):
        simulate_livemind(ctrl, "", TAIL)
    with pytest.raises(ConfigError):
        ctrl.finish("   ")
    run = simulate_livemind(ctrl, "?", TAIL)
    assert run.steps == [] and run.typing_s == 1.0 and run.latency_s == 0.5


def test_unparsed_replies_count_as_inferences_when_not_scoring():
    cfg = Config(chars_per_minute=60.0, choose_action_by_score=False)
    b = ScriptedBackend(["action wait.", "I guess it is B", ANSWER], token_s=0.125)
    run = simulate_livemind(LiveMindController(cfg, b), PROMPT, TAIL)
    assert [(s.kind, s.parsed) for s in run.steps] == [("wait", True), ("inference", False)]
    assert b.calls[-1][1][1] == {"role": "user", "content": "Alpha beta gamma. Delta epsilon zeta."}


def test_collaborative_mode_answers_with_the_output_model():
    infer = ScriptedBackend(["x y z"], token_s=1.0, name="big")
    out = ScriptedBackend([ANSWER], token_s=0.125, name="small")
    run = simulate_livemind(LiveMindController(CFG, infer, out), PROMPT, TAIL)
    assert [k for k, _ in infer.calls] == ["choose", "stream", "choose", "stream"]
    assert [k for k, _ in out.calls] == ["stream"] and run.latency_s == 0.5
    assert out.calls[0][1][2]["content"] == "action inference. x y z"


def test_interactive_cancel_stops_a_step():
    import threading

    cancel = threading.Event()
    cancel.set()
    ctrl = LiveMindController(CFG, ScriptedBackend([" ".join(["w"] * 50)], token_s=0.1))
    record = ctrl.step(PROMPT)
    assert record.kind == "inference"
    record = LiveMindController(CFG, ScriptedBackend([" ".join(["w"] * 50)], token_s=0.1)).step(
        PROMPT, cancel=cancel
    )
    assert record.kind == "cut" and record.tokens == 0 and record.seconds == 0.0  # Enter already pressed


def test_repetition_loop_stops_an_inference_step():
    ctrl = LiveMindController(CFG, ScriptedBackend([" ".join(["a b c d"] * 20)], token_s=0.1))
    record = ctrl.step(PROMPT)
    assert record.reason == "loop" and record.tokens == 12  # 8-word window seen before: 12 words in
    assert ctrl.cache.actions[-1].text == "a b c d a b c d a b c d"


def test_chat_seam_returns_the_whole_reply():
    assert (
        chat(ScriptedBackend(["hello there  world"]), [{"role": "user", "content": "hi"}])
        == "hello there  world"
    )


def test_choice_mode_answers_in_one_scored_call_on_both_sides():
    cfg = Config(chars_per_minute=60.0, answer_mode="choice", answer_format="")
    b = ScriptedBackend(
        ["x y z", "x y z"], token_s=0.125, prefill_s=0.25, choose_s=0.5, choices=["inference"] * 2 + ["B"]
    )
    run = simulate_livemind(LiveMindController(cfg, b), PROMPT, TAIL)
    assert run.answer == "The answer is (B)" and run.final_reason == "choice" and run.final_tokens == 1
    assert run.latency_s == 0.5  # one choose call, no decoding
    assert b.calls[-1][0] == "choose" and b.calls[-1][1][-1]["content"] == " Eta theta." + TAIL
    base = ScriptedBackend([], choose_s=0.75, choices=["C"])
    run = simulate_baseline(base, PROMPT, TAIL, cfg)
    assert run.answer == "The answer is (C)" and run.latency_s == 0.75
    with pytest.raises(ConfigError, match="answer_mode must be one of"):
        Config(answer_mode="letters").validate()
    with pytest.raises(ConfigError, match="distinct"):
        Config(answer_mode="choice", answer_choices="AAB").validate()
    with pytest.raises(ConfigError, match="answer_mode"):
        LiveMindController(Config(answer_mode="letters"), base)
