"""``frugalnn live --model smollm2``: type a question; LiveMind infers while you type, answers on Enter.

On a terminal, keys are read one by one (cbreak mode); each finished sentence triggers an inference
step, shown above the input line; Enter gives the final answer; Ctrl-D or Ctrl-C leaves cleanly. With
piped input every line is one question, typed word by word.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from frugalnn.commands._common import add_config_options, config_from_args, set_threads
from frugalnn.methods.livemind.config import LiveMindConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live",
        help="interactive LiveMind: inferences appear while you type, the answer when you press Enter",
        description="LiveMind (arXiv 2406.14319) in the terminal. Backend: a local model (--model) or an "
        "OpenAI-compatible server (--url, e.g. one started by `frugalnn serve`).",
    )
    p.add_argument(
        "--model", default="smollm2", help="smollm2, a Hugging Face folder or a .gguf (default smollm2)"
    )
    p.add_argument("--url", default=None, help="use an OpenAI-compatible server at this URL instead")
    add_config_options(
        p,
        LiveMindConfig,
        exclude=("answer_format", "answer_choices", "chars_per_minute"),
        aliases={"prompt_format": ("--format",), "max_new_tokens": ("--max-tokens",)},
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=run)


class _Keys:
    """One reader thread for the session: keys go into the current question's text."""

    def __init__(self) -> None:
        self.text = ""
        self.enter = threading.Event()
        self.eof = threading.Event()
        self.lock = threading.Lock()

    def next_question(self) -> None:
        with self.lock:
            self.text = ""
            self.enter = threading.Event()

    def read_keys(self) -> None:
        while not self.eof.is_set():
            ch = sys.stdin.read(1)
            with self.lock:
                if ch in ("", "\x04"):
                    self.eof.set()
                    self.enter.set()
                elif self.enter.is_set():
                    continue  # typed while the answer is written: dropped
                elif ch in ("\r", "\n"):
                    self.enter.set()
                elif ch in ("\x7f", "\b"):
                    self.text = self.text[:-1]
                elif ch.isprintable() or ch == "\t":
                    self.text += ch
                if not self.enter.is_set():
                    _redraw(self.text)


def _redraw(text: str) -> None:
    sys.stdout.write("\r\033[K> " + text[-200:])
    sys.stdout.flush()


def _interactive(controller: object) -> int:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    keys = _Keys()
    threading.Thread(target=keys.read_keys, daemon=True).start()
    try:
        while not keys.eof.is_set():
            controller.reset()  # type: ignore[attr-defined]
            print("\nType a question (Enter: answer, Ctrl-D: quit)")
            _redraw("")
            warmed = ""
            while not keys.enter.is_set():
                with keys.lock:
                    text = keys.text
                record = controller.step(text, cancel=keys.enter)  # type: ignore[attr-defined]
                if record is not None and record.kind == "inference":
                    action = controller.cache.actions[-1]  # type: ignore[attr-defined]
                    sys.stdout.write(
                        f"\r\033[K\033[2m[{record.seconds:.1f}s] inference: {action.text}\033[0m\n"
                    )
                    _redraw(keys.text)
                elif record is None and text.endswith(" ") and text != warmed:
                    warmed = text  # idle: prefill the typed words so Enter leaves less to do
                    controller.warm(text)  # type: ignore[attr-defined]
                elif record is None or record.kind == "skipped":
                    time.sleep(0.05)
            with keys.lock:
                text = keys.text
            print()
            if keys.eof.is_set():
                return 0
            if text.strip():
                start = time.perf_counter()
                controller.finish(text, on_piece=lambda s: (sys.stdout.write(s), sys.stdout.flush()))  # type: ignore[attr-defined]
                print(f"\n\033[2m(answer took {time.perf_counter() - start:.2f} s after Enter)\033[0m")
            keys.next_question()
        return 0
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _piped(controller: object) -> int:
    from frugalnn.methods.livemind.segment import split_words

    for line in sys.stdin:
        question = line.rstrip("\n")
        if not question.strip():
            continue
        controller.reset()  # type: ignore[attr-defined]
        print(f"> {question}")
        typed = ""
        for word in split_words(question):
            typed += word
            record = controller.step(typed)  # type: ignore[attr-defined]
            if record is not None and record.kind == "inference":
                print(f"  [{record.seconds:.1f}s] inference: {controller.cache.actions[-1].text}")  # type: ignore[attr-defined]
        answer = controller.finish(question, on_piece=lambda s: (sys.stdout.write(s), sys.stdout.flush()))  # type: ignore[attr-defined]
        print(f"\n  ({answer.seconds:.2f} s after the last word)")
    return 0


def run(args: argparse.Namespace) -> int:
    from frugalnn.methods.livemind import HTTPBackend, LiveMindController

    set_threads(args.threads)
    config = config_from_args(LiveMindConfig, args, answer_format="")  # a person's question: no MMLU format
    if args.url:
        backend = HTTPBackend(args.url, args.model)
        backend.models()  # fail now, with the fix, when the server is not there
    else:
        from frugalnn.methods.livemind.local import LocalBackend

        backend = LocalBackend.load(args.model)
    controller = LiveMindController(config, backend)
    try:
        return _interactive(controller) if sys.stdin.isatty() else _piped(controller)
    except KeyboardInterrupt:
        print("\nbye")
        return 0
