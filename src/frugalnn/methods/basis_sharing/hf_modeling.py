"""The modelling file written into a compressed folder so that plain Hugging Face code loads it:
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``.

The file is self-contained (torch and transformers only): a config class and a model class that
subclass the dense architecture's and, in ``__init__``, swap the same shared-basis modules in as
``layers.rebuild`` does, with the same parameter names, so one ``model.safetensors`` serves both
loaders. A basis shared by several layers is stored once; the other names are declared as tied
(``_tied_weights_keys``), so ``save_pretrained`` round-trips the model too.
"""

from __future__ import annotations

from frugalnn.core import plugins
from frugalnn.methods.basis_sharing.layers import LAYER_NAME

TEMPLATE = '''"""Basis Sharing compressed {base_model} (written by frugalnn): every compressed projection is
y = coeff(basis(x)), one basis shared by the layers of a group. Load with
AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)."""

import torch
from torch import nn
from transformers import {base_config}, {base_model}


class Basis(nn.Module):
    def __init__(self, in_features, rank):
        super().__init__()
        self.in_features, self.rank = in_features, rank
        self.weight = nn.Parameter(torch.empty(rank, in_features))

    def forward(self, x):
        return nn.functional.linear(x, self.weight)


class SharedBasisLinear(nn.Module):
    def __init__(self, basis, out_features, bias):
        super().__init__()
        self.basis = basis
        self.coeff = nn.Linear(basis.rank, out_features, bias=bias)
        self.in_features, self.out_features = basis.in_features, out_features

    def forward(self, x):
        return self.coeff(self.basis(x))


class FrugalnnConfig({base_config}):
    model_type = "{model_type}"


class FrugalnnForCausalLM({base_model}):
    config_class = FrugalnnConfig

    def __init__(self, config):
        super().__init__(config)
        bases, owners, tied = {{}}, {{}}, {{}}
        for entry in config.frugalnn_compression["modules"]:
            group = entry["group"]
            if group not in bases:
                bases[group], owners[group] = Basis(entry["in"], entry["rank"]), entry["name"]
            else:
                tied[entry["name"] + ".basis.weight"] = owners[group] + ".basis.weight"
            parent, _, child = entry["name"].rpartition(".")
            holder = self.get_submodule(parent) if parent else self
            setattr(holder, child, SharedBasisLinear(bases[group], entry["out"], entry["bias"]))
        self._tied_weights_keys = {{**(type(self)._tied_weights_keys or {{}}), **tied}}
        self.post_init()
'''


@plugins.register("llm_modeling", LAYER_NAME)
def modeling_source(base_model: str, base_config: str, model_type: str) -> str:
    """The modelling file for a compressed model whose dense class is ``transformers.<base_model>``."""
    return TEMPLATE.format(base_model=base_model, base_config=base_config, model_type=model_type)
