"""LiveMind configuration: one dataclass that says everything a run does.

Defaults follow the anchor protocol of the issue (LiveMind arXiv 2406.14319, §4 setup): sentence
segmentation, the ``ua-spi`` format, 240 characters per minute, greedy decoding, at most 256 new
tokens per call.
"""

from __future__ import annotations

from dataclasses import dataclass

from frugalnn.errors import ConfigError

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
class Config:
    """Everything a LiveMind run (or its complete-prompt baseline) does.

    segmenter / min_segment_chars: how the streamed text is cut (spec step 1; pieces shorter than
        ``min_segment_chars`` are merged with the next one, the reference's ``min_len=10``).
    prompt_format: one of FORMATS (spec step 3). ``ua-spi`` keeps earlier messages unchanged, which
        is what lets the local backend reuse its KV cache between steps.
    chars_per_minute: typing speed of the simulated user (spec: Measurement).
    max_new_tokens: cap on the final answer (anchor: 256).
    max_inference_tokens: cap on one inference step while typing; keeps the history compact (the
        anchor's reference run let 53 of 115 steps loop to 256 tokens).
    loop_ngram: stop a generation when its last ``loop_ngram`` tokens already occurred in it (a
        repetition loop); 0 disables the check. Applied to both LiveMind and the baseline.
    stop_at_answer: stop the final answer once it matches ANSWER_PATTERN (both sides).
    choose_action_by_score: pick ``inference`` / ``wait`` by comparing the model's scores for the
        two action words after ``action `` instead of hoping the model writes the format.
    wait_bias: added to the score of ``wait`` before the comparison (0 = plain argmax).
    step_retries: how often a failing inference step is retried before it is skipped.
    answer_format: the answer instruction appended to the last user message (both sides).
    answer_mode: ``generate`` writes the final answer freely (greedy, stopped at the answer regex);
        ``choice`` forces the reply to start with ANSWER_PREFIX and takes the letter of
        ``answer_choices`` the model scores highest there: one forward pass, no decoding loop. It is
        a decoding choice, applied to the baseline and LiveMind alike (docs/livemind.md).
    answer_choices: the option letters ``choice`` mode picks from (MMLU: A-D).
    """

    segmenter: str = "sentence"
    min_segment_chars: int = 10
    prompt_format: str = "ua-spi"
    chars_per_minute: float = 240.0
    max_new_tokens: int = 256
    max_inference_tokens: int = 32
    loop_ngram: int = 8
    stop_at_answer: bool = True
    choose_action_by_score: bool = True
    wait_bias: float = 0.0
    step_retries: int = 1
    answer_format: str = ANSWER_FORMAT
    answer_mode: str = "generate"
    answer_choices: str = "ABCD"

    def __post_init__(self) -> None:
        if self.segmenter not in SEGMENTERS:
            raise ConfigError(f"unknown segmenter {self.segmenter!r}; use one of {', '.join(SEGMENTERS)}")
        if self.prompt_format not in FORMATS:
            raise ConfigError(
                f"unknown prompt format {self.prompt_format!r}; use one of {', '.join(FORMATS)}"
            )
        if self.answer_mode not in ANSWER_MODES:
            raise ConfigError(
                f"unknown answer mode {self.answer_mode!r}; use one of {', '.join(ANSWER_MODES)}"
            )
        if self.answer_mode == "choice" and (
            not self.answer_choices or len(set(self.answer_choices)) != len(self.answer_choices)
        ):
            raise ConfigError(
                f"answer_choices must be distinct option letters, e.g. 'ABCD'; got {self.answer_choices!r}"
            )
        if not self.chars_per_minute > 0:
            raise ConfigError(f"chars_per_minute must be positive, got {self.chars_per_minute}; e.g. 240")
        if self.max_new_tokens < 1 or self.max_inference_tokens < 1:
            raise ConfigError("max_new_tokens and max_inference_tokens must be at least 1; e.g. 256 and 48")
        if self.min_segment_chars < 0 or self.loop_ngram < 0 or self.step_retries < 0:
            raise ConfigError("min_segment_chars, loop_ngram and step_retries must be 0 or more")
