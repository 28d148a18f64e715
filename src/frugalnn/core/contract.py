"""The CLI's bad-input contract: every sub-command, every option, generated bad values.

``commands()`` lists every runnable command from the argparse parser itself; ``cases()`` gives, for
each, bad values of each option from a table of option kinds (non-finite and out-of-range numbers,
non-numbers, unknown choices, oversized seeds and threads, ``--out`` that is a file, empty, full or
cannot be created, missing / corrupt / random-bytes / non-UTF-8 inputs). ``run_case`` runs one in
process under a watchdog and classifies it: clean (exit 2, one line on stderr, no traceback, nothing at
``--out``, the line names the option or the value), traceback, accepted, hung, untidy or unnamed. Used by tests/core/test_cli_contract.py and
bench/bench_reliability.py. A command added later joins by having a base invocation in ``BASE``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

# A valid invocation of each command (positionals by dest, then options); placeholders in braces are
# fixture paths (see ``make_fixtures``). A bad value replaces the option's entry here.
BASE: dict[str, tuple[dict[str, list[str]], list[str]]] = {
    "train": ({}, ["--model", "mlp", "--data", "digits", "--epochs", "0", "--out", "{OUT}"]),
    "eval": ({}, ["--model", "{MLP}", "--data", "digits"]),
    "info": ({"model": ["mlp"]}, []),
    "zoo": ({"action": ["list"], "models": []}, []),
    "reproduce": ({"name": ["no-such-experiment"]}, ["--out", "{OUT}"]),
    "assets fetch": ({"names": ["no-such-asset"]}, []),
    "assets list": ({}, []),
    "basisn train": ({}, ["--model", "{MLP}", "--data", "digits", "--steps", "1", "--out", "{OUT}"]),
    "basisn eval": ({}, ["--model", "{BASISN}", "--data", "digits", "--draws", "1", "--test-images", "10"]),
    "correctnet train": ({}, ["--model", "{MLP}", "--data", "digits", "--out", "{OUT}"]),
    "correctnet place": ({}, ["--model", "{MLP}", "--data", "digits", "--out", "{OUT}"]),
    "correctnet eval": ({}, ["--model", "{MLP}", "--data", "digits", "--draws", "1", "--images", "10"]),
    "crossbar eval": ({}, ["--model", "{MLP}", "--data", "digits", "--draws", "1", "--images", "10"]),
    "early-exit train": ({}, ["--model", "{VGG}", "--data", "digits", "--out", "{OUT}"]),
    "early-exit search": ({}, ["--model", "{EARLY}", "--data", "digits", "--out", "{OUT}"]),
    "early-exit eval": ({}, ["--model", "{EARLY}", "--data", "digits"]),
    "encoding search": ({}, ["--bits", "2", "--generations", "1", "--out", "{OUT}", "--no-progress"]),
    "encoding apply": ({}, ["--model", "{MLP}", "--encoder", "{ENCODER}", "--data", "digits", "--out", "{OUT}"]),
    "export": ({}, ["--model", "{MLP}", "--format", "torchscript", "--data", "digits", "--out", "{OUTFILE}"]),
    "hw characterize-mac": ({}, ["--bits", "2", "--transitions", "64", "--out", "{OUT}"]),
    "hw synth": ({"file": ["{VERILOG}"]}, []),
    "live": ({}, ["--model", "{LLM}"]),
    "llm compress": ({}, ["--model", "{LLM}", "--ratio", "0.2", "--calib-windows", "2", "--window", "16", "--out", "{OUT}"]),
    "llm eval": ({}, ["--model", "{LLM}", "--tokens", "64", "--window", "16"]),
    "llm info": ({}, ["--model", "{LLM}"]),
    "llm generate": ({}, ["--model", "{LLM}", "--prompt", "hi", "--max-new-tokens", "2"]),
    "lm-eval": ({"harness_args": ["--no-such-harness-flag"]}, []),
    "logic train": ({}, ["--data", "digits", "--epochs", "0", "--qat-epochs", "0", "--out", "{OUT}"]),
    "logic export": ({}, ["--model", "{LOGIC}", "--out", "{OUT}", "--no-synth"]),
    "logic verify": ({"design": ["{DESIGN}"]}, ["--data", "digits", "--limit", "5"]),
    "power-prune": ({}, ["--model", "{MLP}", "--data", "digits", "--out", "{OUT}"]),
    "prune": ({}, ["--model", "{MLP}", "--data", "digits", "--out", "{OUT}"]),
    "serve": ({}, ["--model", "{LLM}", "--port", "0"]),
}  # fmt: skip

# option dests that name an input file or folder
PATH_DESTS = {
    "model",
    "encoder",
    "design",
    "file",
    "baseline",
    "data_root",
    "liberty",
    "activations",
    "index",
}
# option dests whose values name a data set or text source
DATA_DESTS = {"data", "calib"}
# commands whose usage errors come from another program's parser, exempt from the one-line check
PASS_THROUGH: dict[str, str] = {}
# (command, flag, value) that are valid for that option although the kind table calls them bad
VALID: dict[tuple[str, str, str], str] = {
    ("live", "--wait-bias", "-1"): "a bias may be negative",
    ("serve", "--port", "0"): "0 picks a free port",
    ("reproduce", "--out", "{FULL}"): "the report root holds one folder per experiment",
}


@dataclass
class Case:
    command: str
    flag: str  # the option under test ("" for a whole-command case)
    value: str
    argv: list[str]
    kind: str


@dataclass
class Outcome:
    case: Case
    status: str  # clean | traceback | accepted | hung | untidy | unnamed
    code: int | None
    stderr: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def _walk(parser: argparse.ArgumentParser, words: list[str], found: dict) -> None:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    if subs:
        for name, child in subs[0].choices.items():
            _walk(child, [*words, name], found)
    elif words:
        found[" ".join(words)] = parser


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every runnable command (``llm compress``, ``train``, ...) -> its parser, from the full parser."""
    from frugalnn.cli import build_parser

    found: dict[str, argparse.ArgumentParser] = {}
    _walk(build_parser(None), [], found)
    return found


def _type_name(action: argparse.Action) -> str:
    convert = getattr(action.type, "__wrapped__", action.type)
    return getattr(convert, "__name__", str(convert))


def bad_values(command: str, action: argparse.Action) -> list[tuple[str, str]]:
    """(kind, value) bad values of one option, by its kind."""
    dest, kind = action.dest, _type_name(action)
    if action.choices is not None and dest != "command":
        return [("unknown choice", "no-such-choice"), ("empty", "")]
    if dest == "out":
        if command == "export":
            return [
                ("existing file", "{FILE}"),
                ("empty", ""),
                ("folder", "{EMPTY}"),
                ("cannot be created", "{FILE}/sub/x.pt"),
            ]
        return [
            ("existing file", "{FILE}"),
            ("empty", ""),
            ("cannot be created", "{FILE}/sub"),
            ("non-empty folder", "{FULL}"),
        ]
    if dest in PATH_DESTS:
        return [
            ("missing path", "{MISSING}"),
            ("empty", ""),
            ("corrupt JSON folder", "{CORRUPT}"),
            ("random-bytes safetensors", "{RANDOM}"),
            ("non-UTF-8 file", "{NONUTF8}"),
        ]
    if dest in DATA_DESTS:
        return [("unknown data", "no-such-data"), ("empty", "")]
    if dest.endswith("seed"):
        return [("negative seed", "-1"), ("oversized seed", str(2**64)), ("non-number", "abc")]
    if dest == "threads":
        return [("zero", "0"), ("negative", "-1"), ("oversized", "100000"), ("non-number", "x")]
    if dest == "port":
        bad = [
            ("negative", "-1"),
            ("out of range", "70000"),
            ("in use", "{BUSYPORT}"),
            ("non-number", "http"),
        ]
        if os.geteuid() != 0:  # root may bind a privileged port
            bad.append(("privileged", "80"))
        return bad
    if dest == "host":
        return [("unknown host", "no-such-host.invalid"), ("empty", "")]
    if kind in ("float", "positive_float", "non_negative_float", "unit_interval"):
        return [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("non-number", "fast"), ("negative", "-1")]
    if kind in ("int", "positive_int", "non_negative_int"):
        return [("non-number", "ten"), ("fraction", "1.5"), ("negative", "-1"), ("oversized", str(10**30))]
    if kind == "<lambda>":  # comma lists
        return [("non-number list", "a,b"), ("nan in list", "nan,1")]
    if not action.option_strings and action.dest != "harness_args":  # names: assets, models, experiments
        return [("unknown name", "no-such-name"), ("empty", "")]
    return []


def cases(command: str, parser: argparse.ArgumentParser, per_option: int | None = None) -> list[Case]:
    """Bad inputs for ``command``: each option's bad values, plus an unknown flag and a missing
    required option. ``per_option``: at most this many values per option, rotating through the kinds
    from one option to the next (a quick run that still covers every kind)."""
    positionals, options = BASE[command]
    words = command.split()
    out: list[Case] = []

    def build(pos: dict[str, list[str]], opts: list[str]) -> list[str]:
        argv = list(words)
        for action in parser._actions:  # noqa: SLF001
            if not action.option_strings and action.dest in pos:
                argv += pos[action.dest]
        return argv + opts

    for index, action in enumerate(parser._actions):  # noqa: SLF001
        if isinstance(action, argparse._HelpAction) or action.nargs == 0:  # noqa: SLF001
            continue
        flag = action.option_strings[0] if action.option_strings else action.dest
        values = bad_values(command, action)
        if per_option is not None and len(values) > per_option:
            values = [values[(index + k) % len(values)] for k in range(per_option)]
        for kind, value in values:
            if (command, flag, value) in VALID:
                continue
            if action.option_strings:
                opts, i = [], 0
                while i < len(options):  # drop the base's entry of this option
                    if options[i] in action.option_strings:
                        i += 2
                        continue
                    opts.append(options[i])
                    i += 1
                argv = build(positionals, [*opts, flag, value])
            else:
                argv = build({**positionals, action.dest: [value]}, options)
            out.append(Case(command, flag, value, argv, kind))
    out.append(
        Case(command, "", "--no-such-flag", build(positionals, [*options, "--no-such-flag"]), "unknown flag")
    )
    required = [a for a in parser._actions if a.required and a.option_strings]  # noqa: SLF001
    for action in required:
        opts, i = [], 0
        while i < len(options):
            if options[i] in action.option_strings:
                i += 2
                continue
            opts.append(options[i])
            i += 1
        out.append(
            Case(command, action.option_strings[0], "(missing)", build(positionals, opts), "missing required")
        )
    return out


class _Hung(BaseException):
    """Raised by the watchdog inside a case that ran past its time."""


def _fill(argv: list[str], paths: dict[str, object], out: Path) -> list[str]:
    subst = {f"{{{k}}}": str(v) for k, v in paths.items()} | {
        "{OUT}": str(out),
        "{OUTFILE}": str(out) + ".pt",
    }
    filled = []
    for arg in argv:
        for key, value in subst.items():
            arg = arg.replace(key, value)
        filled.append(arg)
    return filled


def _names(line: str, case: Case, paths: dict[str, object], out: Path) -> bool:
    """The error line names the option under test or its value (or a part of a comma list)."""
    if case.command in PASS_THROUGH or not case.flag:
        return True
    value = _fill([case.value], paths, out)[0]
    keys = {case.flag, case.flag.lstrip("-"), case.flag.lstrip("-").replace("-", "_"), value}
    keys |= {part for part in value.split(",") if part}
    if value == "" and ("empty" in line or "''" in line):
        return True
    return any(k and k in line for k in keys) or case.flag.lower() in line.lower()


def run_case(case: Case, paths: dict[str, Path], work: Path, timeout_s: float = 30.0) -> Outcome:
    """Run ``frugalnn <case.argv>`` in this process; classify the result (see module doc)."""
    from frugalnn.cli import main

    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    argv = _fill(case.argv, paths, out)
    err, std = io.StringIO(), io.StringIO()
    code: int | None = None
    status = ""
    notes: list[str] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_Hung()))
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
    except _Hung:
        status = "hung"
    except Exception:  # noqa: BLE001 - the point: an escaping exception is a traceback
        status = "traceback"
        notes.append(traceback.format_exc().strip().splitlines()[-1])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    if not status:
        if "Traceback" in text:
            status = "traceback"
        elif code != 2:
            status = "accepted"
        elif len(lines) != 1 and case.command not in PASS_THROUGH:
            status = "untidy"
            notes.append(f"{len(lines)} lines on stderr")
        elif out.exists() or Path(str(out) + ".pt").exists():
            status = "untidy"
            notes.append("created --out")
        elif not _names(lines[0] if lines else "", case, paths, out):
            status = "unnamed"
        else:
            status = "clean"
    leftovers = [p.name for p in work.iterdir() if p.name.endswith((".partial", ".tmp", ".old"))]
    if leftovers:
        status = "untidy" if status == "clean" else status
        notes.append(f"left {leftovers}")
    for p in work.iterdir():
        if p.name != "out":
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
    return Outcome(case, status, code, text.strip(), seconds, notes)


def make_fixtures(root: Path, llm_folder: Path | None = None) -> dict[str, Path]:
    """The files the bad inputs and base invocations point at, under ``root``."""
    from frugalnn.cli import main

    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "FILE": root / "a-file.txt",
        "EMPTY": root / "empty-folder",
        "FULL": root / "full-folder",
        "MISSING": root / "no-such-path",
        "CORRUPT": root / "corrupt-folder",
        "RANDOM": root / "random-folder",
        "NONUTF8": root / "latin1.txt",
        "VERILOG": root / "add.v",
    }
    paths["FILE"].write_text("not a folder\n")
    paths["EMPTY"].mkdir(exist_ok=True)
    paths["FULL"].mkdir(exist_ok=True)
    (paths["FULL"] / "keep.txt").write_text("the user's file\n")
    corrupt = paths["CORRUPT"]
    corrupt.mkdir(exist_ok=True)
    for name in ("checkpoint.json", "config.json", "frugalnn_compression.json", "encoder.json", "io.json"):
        (corrupt / name).write_text('{"spec": [1, 2,')
    rand = paths["RANDOM"]
    rand.mkdir(exist_ok=True)
    noise = os.urandom(4096)
    for name in ("model.safetensors", "frugalnn_model.safetensors"):
        (rand / name).write_bytes(noise)
    (rand / "checkpoint.json").write_text(
        '{"spec": {"name": "mlp", "num_classes": 10, "in_channels": 1, "image_size": 8}}'
    )
    (rand / "config.json").write_text('{"model_type": "llama"}')
    paths["NONUTF8"].write_bytes("caf\xe9 \xff\xfe module".encode("latin-1"))
    paths["VERILOG"].write_text(
        "module add2(input [1:0] a, b, output [2:0] s); assign s = a + b; endmodule\n"
    )
    made = {  # small real models of each kind, made by the commands themselves (seconds in all)
        "MLP": ["train", "--model", "mlp", "--data", "digits", "--epochs", "0"],
        "VGG": ["train", "--model", "vgg-small", "--data", "digits", "--epochs", "0"],
        "BASISN": ["basisn", "train", "--model", "{MLP}", "--data", "digits", "--steps", "1"],
        "EARLY": ["early-exit", "train", "--model", "{VGG}", "--data", "digits", "--head-epochs", "1",
                  "--joint-epochs", "0", "--train-subset", "100"],
        "ENCODER": ["encoding", "search", "--bits", "2", "--generations", "1", "--no-progress"],
        "LOGIC": ["logic", "train", "--data", "digits", "--epochs", "0", "--qat-epochs", "0"],
        "DESIGN": ["logic", "export", "--model", "{LOGIC}", "--no-synth"],
    }  # fmt: skip
    for key, argv in made.items():
        paths[key] = root / key.lower()
        if not paths[key].exists():
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                code = main([*_fill(argv, paths, root / "unused"), "--out", str(paths[key])])
            if code != 0:
                raise RuntimeError(f"could not make the {key} fixture: {sink.getvalue()[-300:]}")
    paths["LLM"] = llm_folder if llm_folder is not None else paths["MISSING"]
    global _BUSY
    if _BUSY is None:  # a port held for the whole run: "port in use"
        _BUSY = socket.socket()
        _BUSY.bind(("127.0.0.1", 0))
        _BUSY.listen(1)
    paths["BUSYPORT"] = _BUSY.getsockname()[1]
    return paths


_BUSY: socket.socket | None = None
