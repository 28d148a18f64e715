"""The LiveMind controller, the complete-prompt baseline and the virtual-clock typing simulation.

Loop (spec "Loop", LiveMind §3): segment the typed text, drop the last (maybe unfinished) segment,
look the rest up in the action cache, and run one inference step on the new segments; when the input
ends, the output step answers from the whole prompt plus the inferences. Model time is whatever the
backend reports per piece (real wall time for real models, fixed delays for the scripted backend),
added to a virtual clock on which the user types at a fixed speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from frugalnn.errors import ConfigError
from frugalnn.methods.livemind.actions import INFERENCE, WAIT, Action, ActionCache, parse_action
from frugalnn.methods.livemind.backends import Backend, BackendError, Messages
from frugalnn.methods.livemind.config import ANSWER_PREFIX, Config
from frugalnn.methods.livemind.formats import (
    baseline_messages,
    get_format,
    inference_messages,
    output_messages,
)
from frugalnn.methods.livemind.generation import GenResult, generate
from frugalnn.methods.livemind.segment import get_segmenter


@dataclass
class StepRecord:
    """One inference step while typing."""

    kind: str  # inference | wait | cut | failed | skipped
    new_segments: int
    new_chars: int
    seconds: float = 0.0
    start_s: float = 0.0
    tokens: int = 0
    parsed: bool = True
    reason: str = ""
    error: str = ""
    stats: dict[str, int] = field(default_factory=dict)


class LiveMindController:
    """Incremental LiveMind: call ``step(text)`` whenever the typed text grows, ``finish(text)`` at the end.

    ``output`` (default: ``infer``) writes the final answer; a different backend gives collaborative
    mode (LiveMind §3.4: one model infers while the text streams, another answers). In that mode each
    step also warms the output backend's prompt cache when it has ``prefill``.
    """

    def __init__(self, config: Config, infer: Backend, output: Backend | None = None) -> None:
        self.config = config.validate()
        self.infer = infer
        self.output = output or infer
        self.collaborative = self.output is not infer
        self.segment = get_segmenter(config.segmenter, config.min_segment_chars)
        get_format(config.prompt_format)
        self.cache = ActionCache()
        self._choose_s = 0.0  # running estimate of the unavoidable part of a step (prefill + choice)
        self._warm_s = 0.0  # cost of the last idle warm-up

    def reset(self) -> None:
        self.cache.clear()

    def step(
        self, text: str, budget_s: float | None = None, cancel: threading.Event | None = None
    ) -> StepRecord | None:
        """One inference step on the new complete segments of ``text``; None when nothing is new.

        ``budget_s``: model time left before the input ends (simulation); a step that would not fit is
        skipped and a running one is cut at the next token. ``cancel``: set when the user pressed Enter.
        A cut, failed or skipped step counts as ``wait``: its segments join the next prompt.
        """
        segments = self.segment(text)[:-1]
        history, new = self.cache.read(segments)
        if not new:
            return None
        record = StepRecord("skipped", len(new), sum(len(s) for s in new))
        if budget_s is not None and (budget_s <= 0 or self._choose_s > budget_s):
            return record

        def should_stop(elapsed: float) -> bool:
            over = budget_s is not None and record.seconds + elapsed >= budget_s
            return over or bool(cancel and cancel.is_set())

        messages = inference_messages(self.config.prompt_format, history, new)
        action = Action(WAIT, prompts=new, parsed=False)
        for _attempt in range(self.config.step_retries + 1):
            try:
                action = self._infer(messages, new, record, should_stop)
                break
            except BackendError as err:  # retried, then skipped: the final answer still comes
                record.seconds += err.seconds
                record.kind, record.error = "failed", str(err)[:200]
                if should_stop(0.0):
                    break
        self.cache.write(action)
        if self.collaborative and record.kind in (INFERENCE, WAIT) and not should_stop(0.0):
            prefill = getattr(self.output, "prefill", None)
            if prefill:
                record.seconds += prefill(
                    inference_messages(self.config.prompt_format, self.cache.actions, [])
                )
        return record

    def _infer(
        self, messages: Messages, new: list[str], record: StepRecord, should_stop: Callable[[float], bool]
    ) -> Action:
        cfg = self.config
        if cfg.choose_action_by_score:
            word, seconds = self.infer.choose(messages, "action", [INFERENCE, WAIT], [0.0, cfg.wait_bias])
            record.seconds += seconds
            self._choose_s = seconds if self._choose_s == 0 else 0.7 * self._choose_s + 0.3 * seconds
            record.stats = dict(getattr(self.infer, "last_stats", {}) or {})
            if word == WAIT:
                record.kind = WAIT
                return Action(WAIT, prompts=new)
            if should_stop(0.0):
                record.kind = "cut"
                return Action(WAIT, prompts=new)
            prefix = "action inference."
        else:
            prefix = ""
        result = generate(
            self.infer,
            messages,
            max_new_tokens=cfg.max_inference_tokens,
            prefix=prefix,
            loop_ngram=cfg.loop_ngram,
            should_stop=should_stop,
        )
        record.seconds += result.seconds
        record.tokens, record.reason = result.tokens, result.reason
        record.stats = record.stats or result.stats
        if result.reason == "cut":  # typing ended mid-step: drop the partial inference
            record.kind = "cut"
            return Action(WAIT, prompts=new)
        action = Action(INFERENCE, result.text.strip()) if prefix else parse_action(result.text)
        action.prompts = new
        record.parsed = action.parsed
        if action.kind == INFERENCE and not action.text:
            action.kind = WAIT  # an empty inference adds nothing; keep the segments for the next prompt
        record.kind = action.kind
        return action

    def finish(self, text: str, on_piece: Callable[[str], None] | None = None) -> GenResult:
        """The output step on the complete text (spec step 5); retried on backend errors."""
        if not text.strip():
            raise ConfigError("the prompt is empty; type a question before pressing Enter")
        history, new = self.cache.read(self.segment(text))
        if not new:  # only when the text ended exactly where a cached segment ended
            history, new = history[:-1], history[-1].prompts if history else [text]
        messages = output_messages(self.config.prompt_format, history, new, self.config.answer_format)
        # A small model copies "action inference. ..." from the history into its answer; the answer may
        # not start with the action word (the format's own marker, not an answer).
        return _final(self.output, messages, self.config, on_piece, avoid_start="action")

    def warm(self, text: str, budget_s: float | None = None) -> float:
        """Prefill what is typed so far, the unfinished segment too, while the model is idle.

        Nothing is inferred: the KV cache then holds everything already seen, so after the last keystroke
        only the rest of the last segment and the options are prefilled. Returns model seconds spent
        (0 when the backend has no ``prefill`` or the last warm-up would not fit in ``budget_s``).
        """
        prefill = getattr(self.output if self.collaborative else self.infer, "prefill", None)
        if prefill is None or not text.strip() or (budget_s is not None and self._warm_s >= budget_s):
            return 0.0
        segments = self.segment(text)
        history, new = self.cache.read(segments[:-1])
        seconds = prefill(inference_messages(self.config.prompt_format, history, new + segments[-1:]))
        self._warm_s = seconds
        return seconds


def _final(
    backend: Backend,
    messages: Messages,
    cfg: Config,
    on_piece: Callable[[str], None] | None,
    avoid_start: str = "",
) -> GenResult:
    spent = 0.0
    for attempt in range(cfg.step_retries + 1):
        try:
            if cfg.answer_mode == "choice":
                return _choose_answer(backend, messages, cfg, on_piece, spent)
            result = generate(
                backend,
                messages,
                max_new_tokens=cfg.max_new_tokens,
                loop_ngram=cfg.loop_ngram,
                stop_at_answer=cfg.stop_at_answer,
                on_piece=on_piece,
                avoid_start=avoid_start,
            )
            result.seconds += spent
            return result
        except BackendError as err:
            spent += err.seconds
            if attempt == cfg.step_retries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _choose_answer(
    backend: Backend,
    messages: Messages,
    cfg: Config,
    on_piece: Callable[[str], None] | None,
    spent: float,
) -> GenResult:
    """``choice`` mode: force ANSWER_PREFIX, pick the best-scored option letter (one forward pass)."""
    wall = time.perf_counter()
    letters = list(cfg.answer_choices)
    letter, seconds = backend.choose(messages, ANSWER_PREFIX, letters, [0.0] * len(letters), sep="")
    text = f"{ANSWER_PREFIX}{letter})"
    if on_piece:
        on_piece(text)
    stats = dict(getattr(backend, "last_stats", {}) or {})
    return GenResult(text, seconds + spent, 1, "choice", stats, time.perf_counter() - wall)


def complete_prompt(
    backend: Backend, text: str, config: Config, on_piece: Callable[[str], None] | None = None
) -> GenResult:
    """The complete-prompt baseline: nothing happens until the input ends, then one answer."""
    if not text.strip():
        raise ConfigError("the prompt is empty; give a question")
    return _final(backend, baseline_messages(text, config.answer_format), config, on_piece)


# ---------------------------------------------------------------------- typing simulation
@dataclass
class Run:
    """One simulated question. Times in seconds on the virtual clock; the input ends at ``typing_s``."""

    latency_s: float  # last input character -> end of the final answer
    overhead_s: float  # an inference step still running when the input ended
    generation_s: float  # all model time: steps + final answer
    final_s: float
    typing_s: float
    answer: str
    final_tokens: int
    final_reason: str
    final_stats: dict[str, int]
    steps: list[StepRecord] = field(default_factory=list)
    final_wall_s: float = 0.0  # wall time of the final answer (differs from final_s on a CPU-time clock)


def _typing_times(n_chars: int, chars_per_minute: float) -> float:
    return n_chars * 60.0 / chars_per_minute


def simulate_livemind(controller: LiveMindController, prompt: str, tail: str = "", warm: bool = True) -> Run:
    """Type ``prompt`` at ``chars_per_minute`` (character i lands at i·60/cpm s); ``tail`` (the options)
    arrives with the last character, with no delay (spec: Measurement).

    ``warm``: when no new segment is complete, prefill the typed words (once per finished word)."""
    if not prompt:
        raise ConfigError("the prompt is empty; give a question to type")
    controller.reset()
    per_char = 60.0 / controller.config.chars_per_minute
    t_end = _typing_times(len(prompt), controller.config.chars_per_minute)
    clock, steps, warmed, warm_s = 0.0, [], 0, 0.0
    while True:
        typed = min(len(prompt), int(clock / per_char + 1e-9))
        if typed >= len(prompt):
            break
        record = controller.step(prompt[:typed], budget_s=t_end - clock)
        if record is None or record.kind == "skipped":
            if warm and record is None and typed > warmed and prompt[typed - 1].isspace():
                warmed = typed
                spent = controller.warm(prompt[:typed], budget_s=t_end - clock)
                warm_s += spent
                clock += spent
                if spent:
                    continue
            clock = max(clock, (typed + 1) * per_char)  # wait for the next keystroke
            continue
        record.start_s = clock
        steps.append(record)
        clock += record.seconds
    overhead = max(0.0, clock - t_end)
    final = controller.finish(prompt + tail)
    return _run(final, overhead, sum(s.seconds for s in steps) + warm_s, t_end, steps)


def simulate_baseline(
    backend: Backend, prompt: str, tail: str, config: Config, prefill_while_typing: bool = False
) -> Run:
    """The complete-prompt baseline on the same clock: it answers after the last character.

    ``prefill_while_typing`` (the "peers" of the spec, e.g. llama.cpp prompt caching) warms the KV
    cache with the typed sentences but does no reasoning ahead; off for the anchor baseline.
    """
    t_end = _typing_times(len(prompt), config.chars_per_minute)
    clock, overhead, warm_s = 0.0, 0.0, 0.0
    prefill = getattr(backend, "prefill", None)
    if prefill_while_typing and prefill:
        segment = get_segmenter(config.segmenter, config.min_segment_chars)
        per_char, done = 60.0 / config.chars_per_minute, 0
        while (typed := min(len(prompt), int(clock / per_char + 1e-9))) < len(prompt):
            ready = segment(prompt[:typed])[:-1]
            if len(ready) > done and clock < t_end:
                messages = baseline_messages("".join(ready))
                seconds = prefill(messages)
                warm_s += seconds
                clock += seconds
                done = len(ready)
            else:
                clock = (typed + 1) * per_char
        overhead = max(0.0, clock - t_end)
    final = complete_prompt(backend, prompt + tail, config)
    return _run(final, overhead, warm_s, t_end, [])


def _run(final: GenResult, overhead_s: float, before_s: float, t_end: float, steps: list[StepRecord]) -> Run:
    """A Run from the final answer: latency = overhead + answer; generation = model time before it + answer."""
    return Run(
        overhead_s + final.seconds,
        overhead_s,
        before_s + final.seconds,
        final.seconds,
        t_end,
        final.text,
        final.tokens,
        final.reason,
        final.stats,
        steps,
        final.wall_s,
    )
