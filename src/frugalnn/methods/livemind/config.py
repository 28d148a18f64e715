"""LiveMind configuration: one dataclass that says everything a run does.

Defaults follow the anchor protocol (LiveMind arXiv 2406.14319, §4 setup): sentence
segmentation, the ``ua-spi`` format, 240 characters per minute, greedy decoding, at most 256 new
tokens per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from frugalnn.core.config import FieldError, MethodConfig, option

SEGMENTERS = ("char", "word", "sentence", "clause")
FORMATS = ("u-pi", "u-pli", "u-spi", "ua-pil", "ua-spi")

# The reference code's MMLU answer instruction (live_mind/utils/dataset/mmlu.py), used by both sides.
ANSWER_FORMAT = "Your answer should end with 'The answer is (Choice)'."
# The reference's answer regex (spec: `answer is \(?([A-J])\)?`).
ANSWER_PATTERN = r"answer is \(?([A-J])\)?"
# The forced start of the final answer in ``choice`` mode: the model then only has to pick the letter.
ANSWER_PREFIX = "The answer is ("
ANSWER_MODES = ("generate", "choice")


@dataclass
class LiveMindConfig(MethodConfig):
    """Everything a LiveMind run (or its complete-prompt baseline) does; see each field's help.

    ``ua-spi`` keeps earlier messages unchanged, which is what lets the local backend reuse its KV
    cache between steps. ``answer_mode="choice"`` is a decoding choice applied to the baseline and
    LiveMind alike (docs/livemind.md).
    """

    METHOD: ClassVar[str] = "livemind"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # the anchor protocol (LiveMind §4): sentences, ua-spi, free generation
        "paper": {},
        # one forward pass for the final answer: measured -51.7% mean latency (docs/livemind.md)
        "ours": {"answer_mode": "choice"},
    }

    segmenter: str = option("sentence", "how the streamed text is cut (spec step 1)", choices=SEGMENTERS)
    min_segment_chars: int = option(
        10, "pieces shorter than this merge with the next one (the reference's min_len)", low=0
    )
    prompt_format: str = option(
        "ua-spi", "prompt format of the inference steps (spec step 3)", choices=FORMATS
    )
    chars_per_minute: float = option(240.0, "typing speed of the simulated user", low=0.0, low_open=True)
    max_new_tokens: int = option(256, "cap on the final answer's tokens", low=1)
    max_inference_tokens: int = option(
        32, "cap on one inference step while typing (keeps the history compact)", low=1
    )
    loop_ngram: int = option(
        8, "stop a generation when its last n tokens already occurred in it; 0 disables", low=0
    )
    stop_at_answer: bool = option(True, "stop the final answer once it matches the answer pattern")
    choose_action_by_score: bool = option(
        True, "pick inference / wait by the model's scores for the two action words"
    )
    wait_bias: float = option(0.0, "added to the score of 'wait' before the comparison")
    step_retries: int = option(1, "retries of a failing inference step before it is skipped", low=0)
    answer_format: str = option(ANSWER_FORMAT, "answer instruction appended to the last user message")
    answer_mode: str = option(
        "generate",
        "generate: free greedy answer; choice: force 'The answer is (' and take the best-scored letter",
        choices=ANSWER_MODES,
    )
    answer_choices: str = option("ABCD", "the option letters choice mode picks from")

    def check(self) -> None:
        if self.answer_mode == "choice" and (
            not self.answer_choices or len(set(self.answer_choices)) != len(self.answer_choices)
        ):
            raise FieldError(
                "answer_choices", f"must be distinct option letters, e.g. 'ABCD'; got {self.answer_choices!r}"
            )


Config = LiveMindConfig
