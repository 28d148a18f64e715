"""Find a causal LM's decoder layers and their linear sub-modules from the model itself (no model table).

The decoder stack is the ModuleList of identical blocks that holds the most parameters and whose blocks
contain at least two linear layers (nn.Linear or GPT-2's Conv1D). A matrix *type* is a linear's name
relative to its block (``self_attn.q_proj``, ``mlp.c_fc``); its *role* (q, k, v, qkv, o, up, gate, down)
comes from the name and only chooses the default sharing (the spec's per-family reference choices).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from frugalnn.errors import UnsupportedModelError
from frugalnn.methods.basis_sharing.layers import is_linear, linear_weight

_ROLE_NAMES = {
    "q": ("q_proj", "query", "wq", "q"),
    "k": ("k_proj", "key", "wk", "k"),
    "v": ("v_proj", "value", "wv", "v"),
    "qkv": ("c_attn", "qkv_proj", "query_key_value", "wqkv", "qkv"),
    "o": ("o_proj", "out_proj", "wo", "dense"),
    "up": ("up_proj", "fc1", "c_fc", "w1", "dense_h_to_4h", "fc_in"),
    "gate": ("gate_proj", "w3"),
    "down": ("down_proj", "fc2", "w2", "dense_4h_to_h", "fc_out"),
}


@dataclass
class Discovered:
    layers_name: str
    layers: nn.ModuleList
    types: list[str]
    roles: dict[str, str]
    shapes: dict[str, tuple[int, int]]  # type -> (d_in, d_out)

    def default_share(self) -> set[str]:
        """Reference sharing: fused-QKV (GPT-2): qkv, o, up; grouped-query attention (Mistral, Qwen2,
        SmolLM2): q, up, gate; otherwise (LLaMA, OPT): q, k, v, up, gate. o/down stay per layer."""
        by_role = {role: t for t, role in self.roles.items()}
        if "qkv" in by_role:
            roles = {"qkv", "o", "up"}
        elif (
            "q" in by_role and "k" in by_role and self.shapes[by_role["k"]][1] < self.shapes[by_role["q"]][1]
        ):
            roles = {"q", "up", "gate"}
        else:
            roles = {"q", "k", "v", "up", "gate"}
        return {t for t, role in self.roles.items() if role in roles}

    def resolve(self, names: tuple[str, ...] | None, default: set[str]) -> set[str]:
        """Type names from a user list of type names or roles."""
        if names is None:
            return set(default)
        out: set[str] = set()
        for name in names:
            hits = [
                t for t in self.types if t == name or self.roles[t] == name or t.rsplit(".", 1)[-1] == name
            ]
            if not hits:
                known = ", ".join(f"{t} ({self.roles[t]})" for t in self.types)
                raise UnsupportedModelError(
                    f"matrix type {name!r} not in this model's decoder layers; known: {known}"
                )
            out.update(hits)
        return out


def _role(type_name: str) -> str:
    parts = type_name.lower().split(".")
    leaf = parts[-1]
    if leaf == "c_proj":  # GPT-2 names both projections c_proj: the parent tells them apart
        return "o" if any("attn" in p for p in parts[:-1]) else "down"
    for role, names in _ROLE_NAMES.items():
        if leaf in names:
            return role
    return "other"


def discover(model: nn.Module) -> Discovered:
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(block) for block in module}) != 1:
            continue
        if sum(is_linear(m) for m in module[0].modules()) < 2:
            continue
        size = sum(p.numel() for p in module.parameters())
        if best is None or size > best[0]:
            best = (size, name, module)
    if best is None:
        raise UnsupportedModelError(
            f"no decoder layers found in {type(model).__name__} (no list of identical blocks with linear layers); "
            "give a Hugging Face causal LM (Llama, Qwen2, Mistral, GPT-2, OPT, ...)"
        )
    _, layers_name, layers = best
    shapes: dict[str, tuple[int, int]] = {}
    for rel, module in layers[0].named_modules():
        if is_linear(module):
            weight, _ = linear_weight(module)
            shapes[rel] = (int(weight.shape[1]), int(weight.shape[0]))
    # keep the types every block has with the same shape (heterogeneous blocks keep their odd ones dense)
    for block in layers[1:]:
        for rel in list(shapes):
            try:
                module = block.get_submodule(rel)
            except AttributeError:
                shapes.pop(rel)
                continue
            if not is_linear(module) or tuple(linear_weight(module)[0].shape[::-1]) != shapes[rel]:
                shapes.pop(rel)
    if not shapes:
        raise UnsupportedModelError(
            f"the decoder layers of {type(model).__name__} share no linear layer to compress"
        )
    types = list(shapes)
    return Discovered(layers_name, layers, types, {t: _role(t) for t in types}, shapes)
