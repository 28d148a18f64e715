"""Prompt formats of the LiveMind reference code (live_mind/format/functions.py), re-written.

Each takes the history (cached actions, each with the segments it handled) and the new segments and
returns the chat messages after the system prompt. Segments are joined with ``""`` (they carry their
own white space). Earlier segments that only got ``wait`` are treated as new (spec step 3).

- ``u-pi``:   one user message: "Incomplete prompt: ..." then "Previous inferences: (1) ... (2) ...".
- ``u-pli``:  one user message: "Previous prompt: ..." / "New prompt: ..." / "Previous inferences: ...".
- ``u-spi``:  one user message: alternating "Prompt: ..." and "Inference: ..." lines.
- ``ua-pil``: user (earlier prompt) / assistant (all inferences) / user (new prompt).
- ``ua-spi``: user / assistant / user / ... in order; each assistant turn reads "action inference. ...".
  Earlier messages never change when the history grows, so a KV or prefix cache stays valid.
"""

from __future__ import annotations

from collections.abc import Callable

from frugalnn.errors import ConfigError
from frugalnn.methods.livemind.actions import WAIT, Action

Messages = list[dict[str, str]]


def _split_waiting(history: list[Action], new: list[str]) -> tuple[list[str], list[str]]:
    """(segments up to the last non-wait action, the trailing waited segments + the new ones)."""
    last = len(history)
    while last > 0 and history[last - 1].kind == WAIT:
        last -= 1
    old = [p for a in history[:last] for p in a.prompts]
    waiting = [p for a in history[last:] for p in a.prompts]
    return old, waiting + list(new)


def _inferences(history: list[Action]) -> list[str]:
    return [a.text for a in history if a.kind != WAIT and a.text]


def _numbered(inferences: list[str]) -> str:
    return " ".join(f"({i}) {text}" for i, text in enumerate(inferences, 1))


def format_u_pi(history: list[Action], new: list[str]) -> Messages:
    lines = [f"Incomplete prompt: {''.join([p for a in history for p in a.prompts] + list(new))}"]
    if inferences := _inferences(history):
        lines.append(f"Previous inferences: {_numbered(inferences)}")
    return [{"role": "user", "content": "\n".join(lines)}]


def format_u_pli(history: list[Action], new: list[str]) -> Messages:
    old, new = _split_waiting(history, new)
    lines = []
    if old:
        lines.append(f"Previous prompt: {''.join(old)}")
    if new:
        lines.append(f"New prompt: {''.join(new)}")
    if inferences := _inferences(history):
        lines.append(f"Previous inferences: {_numbered(inferences)}")
    return [{"role": "user", "content": "\n".join(lines)}]


def _sequence(history: list[Action], new: list[str]) -> list[tuple[str, str]]:
    """Alternating ("prompt", text) / ("inference", text) blocks; waited segments join the next prompt."""
    blocks: list[tuple[str, str]] = []
    pending: list[str] = []
    for action in history:
        pending.extend(action.prompts)
        if action.kind == WAIT:
            continue
        if pending:
            blocks.append(("prompt", "".join(pending)))
            pending = []
        if action.text:
            if blocks and blocks[-1][0] == "inference":  # an action without prompts joins the last one
                blocks[-1] = ("inference", blocks[-1][1] + " " + action.text)
            else:
                blocks.append(("inference", action.text))
    rest = "".join(pending + list(new))
    if rest:
        blocks.append(("prompt", rest))
    return blocks


def format_u_spi(history: list[Action], new: list[str]) -> Messages:
    label = {"prompt": "Prompt: ", "inference": "Inference: "}
    text = "\n".join(label[kind] + body for kind, body in _sequence(history, new))
    return [{"role": "user", "content": text}]


def format_ua_pil(history: list[Action], new: list[str]) -> Messages:
    old, new = _split_waiting(history, new)
    inferences = _inferences(history)
    if not old or not inferences:
        return [{"role": "user", "content": "".join(old + new)}]
    messages = [
        {"role": "user", "content": "".join(old)},
        {"role": "assistant", "content": " ".join(inferences)},
    ]
    if new:
        messages.append({"role": "user", "content": "".join(new)})
    return messages


def format_ua_spi(history: list[Action], new: list[str]) -> Messages:
    messages = []
    for kind, body in _sequence(history, new):
        if kind == "prompt":
            messages.append({"role": "user", "content": body})
        else:
            messages.append({"role": "assistant", "content": f"action inference. {body}"})
    return messages


FORMATS: dict[str, Callable[[list[Action], list[str]], Messages]] = {
    "u-pi": format_u_pi,
    "u-pli": format_u_pli,
    "u-spi": format_u_spi,
    "ua-pil": format_ua_pil,
    "ua-spi": format_ua_spi,
}


def get_format(name: str) -> Callable[[list[Action], list[str]], Messages]:
    if name not in FORMATS:
        raise ConfigError(f"unknown prompt format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[name]


# System prompts. The inference prompt is the reference's (format_inference_sys) followed by the
# reference's output instructions (format_output_sys): one system prompt for both stages, so the final
# prompt starts with exactly the tokens the inference steps already cached and only the last segment,
# the options and the answer format are prefilled after the last keystroke. The answer format stays at
# the end of the last user message on both sides, as in the reference: in the system prompt SmolLM2 stops
# writing "The answer is (X)" (measured on 4 questions: 1 of 4 answered on each side).
INFERENCE_SYSTEM = (
    "You are a helpful large language model tasked with solving a problem based on user input. The user is "
    "currently providing input, and you need to make inferences based on the incomplete information available "
    "so far. These inferences will help you solve the problem more efficiently when more input arrives. You are "
    "given the incomplete problem and your previous inferences on the incomplete problem.\n\n"
    "You can choose to make a new inference or wait if you need more information.\n"
    "If you choose to make a new inference, respond in the following format (replace the content in the braces "
    "with appropriate text): 'action inference. {content}'.\nThe content should be only relevant to content you "
    "are inferring based on the incomplete problem and your previous inferences.\n\n"
    "If you choose to wait, respond with 'action wait.' without any additional content.\n\n"
    "When the options arrive, the problem is complete: then use your previous inferences without mentioning "
    "them. Answer directly if you have obtained the answer in your previous inferences, otherwise make minimal "
    "additional inferences to solve the problem."
)
# The complete-prompt baseline's system prompt (reference CoTFormatter).
BASELINE_SYSTEM = (
    "Your are a helpful assistant to solve a given problem. Solve the problem by thinking step by step."
)


def inference_messages(fmt: str, history: list[Action], new: list[str]) -> Messages:
    return [{"role": "system", "content": INFERENCE_SYSTEM}, *get_format(fmt)(history, new)]


def output_messages(fmt: str, history: list[Action], new: list[str], answer_format: str = "") -> Messages:
    """The output stage (spec step 5): the whole prompt and the inferences, then the answer format."""
    messages = inference_messages(fmt, history, new)
    tail = f"\n\n{answer_format}" if answer_format else ""
    if messages[-1]["role"] == "user":
        messages[-1] = {"role": "user", "content": messages[-1]["content"] + tail}
    else:
        messages.append({"role": "user", "content": tail.lstrip()})
    return messages


def baseline_messages(prompt: str, answer_format: str = "") -> Messages:
    """The complete-prompt baseline (reference CompleteController + CoTFormatter + answer format)."""
    user = prompt + (f"\n\n{answer_format}" if answer_format else "")
    return [{"role": "system", "content": BASELINE_SYSTEM}, {"role": "user", "content": user}]
