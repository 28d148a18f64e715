"""Causal language models: load (HF folder, GGUF file, bundled ``smollm2``), save, chat, perplexity.

One loader for every LLM the project touches::

    model, tok = load_causal_lm("smollm2")            # bundled SmolLM2-135M-Instruct (Q4_1 GGUF -> fp32)
    model, tok = load_causal_lm("/models/llama-7b", dtype=torch.bfloat16, device_map="auto")
    model, tok = load_causal_lm("file.gguf")

The bundled GGUF is dequantised once (about 15 s) and cached as a normal Hugging Face folder under
``$FRUGALNN_CACHE/models/smollm2``, so later loads take about a second.

Compressed models. A method that swaps modules (e.g. Basis Sharing's shared-basis linears) registers a
rebuild function with ``core.plugins.register("llm_layer", NAME)``, a modelling-file writer with
``register("llm_modeling", NAME)``, and sets ``model.frugalnn_compression = {"layer": NAME, ...}``.
``save_causal_lm`` then writes a Hugging Face folder that transformers loads with
``trust_remote_code=True`` (core/llm_hf.py). ``load_causal_lm`` builds the dense architecture from the
config, looks ``NAME`` up in the ``llm_layer`` registry, calls ``rebuild(model, spec)`` (which swaps the
modules back in, sharing the same Parameter objects) and loads the weights strictly; it never runs the
modelling file. Folders of the earlier format (``frugalnn_compression.json`` + ``frugalnn_model.safetensors``)
still load. Core never imports a method, and nothing named in a file is imported: only registered
functions can run.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from frugalnn.core import plugins
from frugalnn.core.assets import asset_path, cache_dir
from frugalnn.core.io import atomic_output_dir, atomic_write_json, usual_permissions
from frugalnn.errors import CheckpointError, ConfigError, UnsupportedModelError

BUNDLED_MODELS = ("smollm2",)
COMPRESSION_FILE = "frugalnn_compression.json"
COMPRESSED_WEIGHTS = "frugalnn_model.safetensors"
# compressed folders written before the plug-in registry store the rebuild function's dotted path
LEGACY_LOADERS = {"frugalnn.methods.basis_sharing.layers:rebuild": "basis_sharing"}


# --------------------------------------------------------------------------- loading
def load_causal_lm(
    path_or_name: str | os.PathLike, dtype: torch.dtype = torch.float32, device_map: Any = None
) -> tuple[torch.nn.Module, Any]:
    """Load a causal LM and its tokenizer from a bundled name, an HF model folder or a ``.gguf`` file.

    ``device_map`` is passed to transformers/accelerate for HF folders (e.g. ``"auto"`` spreads a large
    model over the GPUs and offloads the rest to CPU); see docs/llm.md.
    """
    name = str(path_or_name)
    if name in BUNDLED_MODELS:
        folder = _bundled_folder(name)
        return _load_hf_folder(folder, dtype, device_map)
    path = Path(name).expanduser()
    if not path.exists() and _looks_like_hub_id(name):
        return _load_hub(name, dtype, device_map)
    check_model_source(name)
    if path.is_file():
        model, tok = _load_gguf(path, dtype)
        if device_map is not None and isinstance(device_map, str) and device_map not in ("auto", "cpu"):
            model = model.to(device_map)
        return model, tok
    return _load_hf_folder(path, dtype, device_map)


def check_model_source(name: str) -> None:
    """Fail fast (before any weights load) when ``name`` cannot be a model ``load_causal_lm`` reads."""
    path = Path(name).expanduser()
    if not name.strip():
        raise CheckpointError("the model name is empty; give 'smollm2', a model folder or a .gguf file")
    if name in BUNDLED_MODELS or (not path.exists() and _looks_like_hub_id(name)):
        return
    if not path.exists():
        raise CheckpointError(
            f"model {name!r} not found; give an existing Hugging Face model folder (with config.json), "
            f"a .gguf file, or one of the bundled names: {', '.join(BUNDLED_MODELS)}"
        )
    if path.is_file() and path.suffix.lower() != ".gguf":
        raise CheckpointError(
            f"{path} is a file but not a .gguf; give a .gguf file or the Hugging Face folder that holds "
            "config.json and the weights"
        )
    if path.is_dir():
        from frugalnn.core.llm_hf import is_hf_compressed

        if not is_hf_compressed(path):  # a compressed folder's config names frugalnn's own model_type
            _load_config(path)
        from safetensors import safe_open

        for weights in sorted(path.glob("*.safetensors")):  # headers only: corrupt files fail here
            try:
                with safe_open(str(weights), framework="pt"):
                    pass
            except Exception as err:  # noqa: BLE001 - SafetensorError, OSError: unreadable either way
                raise CheckpointError(
                    f"{weights} is not a readable safetensors file ({str(err)[:80]}); save the model again"
                ) from None


def _looks_like_hub_id(name: str) -> bool:
    """``org/name`` (one slash, no path syntax): a Hugging Face Hub repository id."""
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(p and not p.startswith(".") and " " not in p for p in parts)
        and "\\" not in name
    )


def _load_hub(repo_id: str, dtype: torch.dtype, device_map: Any) -> tuple[torch.nn.Module, Any]:
    """A Hub id through transformers (its cache, ``HF_HOME``, ``HF_HUB_OFFLINE`` apply as usual)."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
        )
    except Exception as err:  # offline without a cached copy, unknown repo, gated repo
        raise CheckpointError(
            f"model {repo_id!r} is neither a local folder nor in the Hugging Face cache, and the Hub could not "
            f"give it ({type(err).__name__}); download it where the Hub is reachable "
            f"(huggingface-cli download {repo_id}) or give a local folder"
        ) from None
    return _load_hf_folder(Path(folder), dtype, device_map)


def _bundled_folder(name: str) -> Path:
    """The cached HF folder of a bundled model, building it from the GGUF asset on first use (atomically).

    The stamp names the asset by file name and size, so a cache that is moved, mounted elsewhere or
    shared is used as is. A cache that cannot be written gets its copy in a private temporary folder
    (removed at exit) instead of an error."""
    gguf = asset_path(name)
    folder = cache_dir() / "models" / name
    stamp = {"source": gguf.name, "bytes": gguf.stat().st_size}
    marker = folder / "frugalnn_source.json"
    if marker.is_file():
        try:
            found = json.loads(marker.read_text())
            same = (
                Path(str(found.get("source", ""))).name == gguf.name and found.get("bytes") == stamp["bytes"]
            )
            if same and (folder / "config.json").is_file():
                return folder
        except (OSError, json.JSONDecodeError, AttributeError):
            pass
    model, tok = _load_gguf(gguf, torch.float32)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=folder.parent))
    except OSError:  # a read-only or foreign cache: keep a private copy for this process only
        private = Path(tempfile.mkdtemp(prefix=f"frugalnn-{name}-"))
        atexit.register(shutil.rmtree, private, True)
        print(
            f"note: cache {folder.parent} is not writable; {name} converted into {private}", file=sys.stderr
        )
        model.save_pretrained(private)
        tok.save_pretrained(private)
        return private
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_json(tmp / marker.name, stamp)
        usual_permissions(tmp)  # a shared cache is readable by its other users
        if folder.exists():  # a stale cache (another asset version): move it aside first
            old = folder.with_name(f".{name}.old.{os.getpid()}")
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            # another process renamed its finished copy first: theirs is as good as ours
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _load_gguf(path: Path, dtype: torch.dtype) -> tuple[torch.nn.Module, Any]:
    """Dequantise a GGUF file into a plain (saveable) transformers model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise UnsupportedModelError(
            "reading .gguf files needs the 'gguf' package; pip install gguf"
        ) from None
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as err:  # transformers raises many kinds for a bad GGUF
        raise CheckpointError(
            f"could not read GGUF file {path} ({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
            "check that the file is complete and its architecture is one transformers supports"
        ) from None
    # transformers marks a GGUF-loaded model as quantised and refuses save_pretrained: rebuild a plain one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = str(path)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    model = model.to(dtype).eval()
    return model, tok


def _load_config(folder: Path) -> Any:
    from transformers import AutoConfig

    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"{folder} has no config.json; give a Hugging Face model folder (save_pretrained output) or a .gguf file"
        )
    try:
        if not isinstance(json.loads((folder / "config.json").read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(
            f"{folder}/config.json is not valid JSON ({str(err)[:80]}); re-save the model folder"
        ) from None
    try:
        return AutoConfig.from_pretrained(str(folder))
    except (ValueError, KeyError) as err:
        model_type = _json_field(folder / "config.json", "model_type")
        raise UnsupportedModelError(
            f"architecture model_type={model_type!r} in {folder} is not one transformers can build "
            f"({str(err).splitlines()[0][:120]}); upgrade transformers or convert the model to a supported one"
        ) from None


def _json_field(path: Path, key: str) -> Any:
    try:
        return json.loads(path.read_text()).get(key)
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _load_hf_folder(folder: Path, dtype: torch.dtype, device_map: Any) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from frugalnn.core.llm_hf import is_hf_compressed, load_hf_compressed

    if is_hf_compressed(folder):
        model = load_hf_compressed(folder, dtype)
    elif (folder / COMPRESSION_FILE).is_file():  # the format before HF-loadable folders
        model = _load_compressed(folder, _load_config(folder), dtype)
    else:
        config = _load_config(folder)  # a clear error for a missing or unknown config first
        try:
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, device_map=device_map)
        except ValueError as err:
            if "Unrecognized configuration class" in str(err):
                raise UnsupportedModelError(
                    f"{folder}: model_type {config.model_type!r} has no causal-LM head in transformers; "
                    "give a decoder (causal) language model"
                ) from None
            raise CheckpointError(
                f"could not load weights from {folder}: {str(err).splitlines()[0][:200]}"
            ) from None
        except Exception as err:  # OSError, RuntimeError, SafetensorError: missing or corrupt weight files
            raise CheckpointError(
                f"could not load weights from {folder} ({str(err).splitlines()[0][:160]}); "
                "the weight files are missing or corrupt: save the model again"
            ) from None
    try:
        # never the folder's modelling code for a tokenizer (no prompt); a compressed folder's renamed
        # model_type only makes transformers warn that the config is not the tokenizer's: quiet that
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
        finally:
            hf_logging.set_verbosity(level)
    except Exception as err:
        raise CheckpointError(
            f"{folder} has no usable tokenizer ({type(err).__name__}); save the tokenizer into the folder "
            "(tokenizer.save_pretrained) beside the model"
        ) from None
    return model.eval(), tok


def _load_compressed(folder: Path, config: Any, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from frugalnn.core.llm_hf import load_state

    spec = json.loads((folder / COMPRESSION_FILE).read_text())
    try:
        rebuild = plugins.lookup("llm_layer", _layer_name(spec, folder))
    except ConfigError as err:
        raise CheckpointError(f"{folder / COMPRESSION_FILE}: {err}; upgrade frugalnn") from None
    try:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    except ValueError:
        raise UnsupportedModelError(
            f"{folder}: model_type {config.model_type!r} is not a causal LM"
        ) from None
    model = rebuild(model, spec)
    load_state(model, folder / COMPRESSED_WEIGHTS, spec.get("aliases", {}), folder)
    model.frugalnn_compression = spec
    return model.to(dtype)


def _layer_name(spec: dict[str, Any], folder: Path) -> str:
    """The registered ``llm_layer`` name of a compressed folder; folders that store the rebuild
    function's dotted path (the format before the plug-in registry) map through ``LEGACY_LOADERS``."""
    if isinstance(spec.get("layer"), str):
        return spec["layer"]
    loader = str(spec.get("loader", ""))
    if loader in LEGACY_LOADERS:
        return LEGACY_LOADERS[loader]
    raise CheckpointError(
        f"{folder / COMPRESSION_FILE} names loader {loader!r}, which is no frugalnn layer format; "
        "save the model again with frugalnn's save_causal_lm"
    )


# --------------------------------------------------------------------------- saving
def save_causal_lm(
    model: torch.nn.Module,
    tokenizer: Any,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Save model + tokenizer to a folder atomically; ``load_causal_lm(out_dir)`` gives identical logits.
    ``extra_json`` (file name -> object) is written inside the folder before it appears.

    A compressed model is written in Hugging Face form (core/llm_hf.py): transformers loads it with
    ``AutoModelForCausalLM.from_pretrained(out_dir, trust_remote_code=True)``."""
    from frugalnn.core.llm_hf import save_hf_compressed

    spec = getattr(model, "frugalnn_compression", None)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        if spec is None:
            model.save_pretrained(tmp)
        else:
            save_hf_compressed(model, tmp, spec)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, obj in (extra_json or {}).items():
            atomic_write_json(tmp / name, obj)
    return Path(out_dir)


# --------------------------------------------------------------------------- using
@torch.no_grad()
def generate_chat(
    model: torch.nn.Module,
    tokenizer: Any,
    messages: Sequence[dict[str, str]],
    max_new_tokens: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    **generate_kwargs: Any,
) -> str:
    """Answer a chat (``[{"role": "user", "content": ...}, ...]``) with the tokenizer's chat template.

    Greedy by default, so the same model and messages always give the same text.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "this tokenizer has no chat template; set tokenizer.chat_template or use a chat model"
        )
    if max_new_tokens <= 0:
        raise ConfigError(f"max_new_tokens must be positive, got {max_new_tokens}")
    prompt = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    device = next(model.parameters()).device
    input_ids = enc["input_ids"].to(device)
    attention = enc["attention_mask"].to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "pad_token_id": pad}
    if do_sample:
        kwargs["temperature"] = temperature
    else:  # silence "temperature/top_p set but do_sample=False" from a model's generation_config
        kwargs.update(temperature=None, top_p=None, top_k=None)
    kwargs.update(generate_kwargs)
    out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
    return tokenizer.decode(out[0, input_ids.shape[1] :], skip_special_tokens=True)


@torch.no_grad()
def window_nll(
    model: torch.nn.Module, windows: torch.Tensor, batch_size: int = 4, progress: bool = True
) -> torch.Tensor:
    """Mean next-token negative log-likelihood of each window (float64, shape [n])."""
    from tqdm import tqdm

    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ConfigError(
            f"windows must be a LongTensor [n, L] with L >= 2, got shape {tuple(windows.shape)}"
        )
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll = []
    for start in tqdm(
        range(0, len(windows), batch_size), desc="perplexity", unit="batch", disable=not progress
    ):
        ids = windows[start : start + batch_size].to(device)
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        nll.append(loss.mean(dim=1).double().cpu())
    model.train(was_training)
    return torch.cat(nll)


def perplexity(
    model: torch.nn.Module, windows: torch.Tensor, batch_size: int = 4, progress: bool = True
) -> float:
    """exp(mean over windows of each window's mean next-token NLL) — the protocol of docs/llm.md."""
    return float(math.exp(window_nll(model, windows, batch_size, progress).mean().item()))


def encode_text(tokenizer: Any, text: str) -> torch.Tensor:
    """Token ids of a whole text, tokenised once, without BOS/EOS (the protocol of the perplexity tables)."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (a shared or tied tensor counts once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # nn.Module.parameters() already skips duplicates by identity
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
