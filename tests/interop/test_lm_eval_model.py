"""The lm-evaluation-harness model 'frugalnn' on a local perplexity task: its log-likelihood equals
frugalnn's own perplexity of the same tokens, in process and through `frugalnn lm-eval run`."""

from __future__ import annotations

import json
import math

import torch

from frugalnn.cli import main
from frugalnn.core.llm import load_causal_lm, perplexity

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 10
TASK = """task: frugalnn_local_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: byte_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
"""


def _setup(tmp_path, tokenizer, write_tiny_llama):
    write_tiny_llama(tmp_path / "model", tokenizer, layers=2)
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": TEXT}) + "\n")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "task.yaml").write_text(TASK.format(docs=tmp_path / "docs.jsonl"))
    model, tok = load_causal_lm(tmp_path / "model")
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    # the harness predicts every token of the document after the BOS token, in one window here
    ours = perplexity(model, torch.tensor([[tok.bos_token_id, *ids]]))
    return ours, len(ids)


def _token_ppl(byte_ppl: float, n_tokens: int) -> float:
    return math.exp(math.log(byte_ppl) * len(TEXT.encode()) / n_tokens)


def test_in_process_and_cli_agree_with_frugalnn(tmp_path, smol_tokenizer, write_tiny_llama) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    import frugalnn.interop.lm_eval_model  # noqa: F401  (registers the model name)

    ours, n_tokens = _setup(tmp_path, smol_tokenizer, write_tiny_llama)
    out = lm_eval.simple_evaluate(
        model="frugalnn", model_args=f"pretrained={tmp_path / 'model'},max_length=512",
        tasks=["frugalnn_local_ppl"], task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
    )  # fmt: skip
    harness = _token_ppl(out["results"]["frugalnn_local_ppl"]["byte_perplexity,none"], n_tokens)
    assert abs(harness / ours - 1) < 0.01  # the 1%; equal to about 1e-6 in fact
    args = [
        "lm-eval",
        "run",
        "--model",
        "frugalnn",
        "--model_args",
        f"pretrained={tmp_path / 'model'},max_length=512",
    ]
    args += ["--tasks", "frugalnn_local_ppl", "--include_path", str(tmp_path / "tasks")]
    assert main([*args, "--output_path", str(tmp_path / "out")]) == 0
    (written,) = list((tmp_path / "out").rglob("results_*.json"))
    byte_ppl = json.loads(written.read_text())["results"]["frugalnn_local_ppl"]["byte_perplexity,none"]
    assert abs(_token_ppl(byte_ppl, n_tokens) / ours - 1) < 0.01
