"""The modelling file written into a compressed folder so that plain Hugging Face code loads it:
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``.

The file is self-contained (torch and transformers only): the source of ``modules.py`` (the shared-basis
layers and the fused basis GEMMs, the very code frugalnn runs) followed by a config class and a model
class that subclass the dense architecture's and, in ``__init__``, swap the same shared-basis modules in
as ``layers.rebuild`` does, with the same parameter names, so one ``model.safetensors`` serves both
loaders. A basis shared by several layers is stored once; the other names are declared as tied
(``_tied_weights_keys``), so ``save_pretrained`` round-trips the model too. The fused weights are derived
at run time and never saved; ``model.fuse_bases(False)`` turns fusion off.
"""

from __future__ import annotations

import ast
import inspect

from frugalnn.core import plugins
from frugalnn.methods.basis_sharing import modules
from frugalnn.methods.basis_sharing.layers import LAYER_NAME

HEADER = '''"""Basis Sharing compressed {base_model} (written by frugalnn): every compressed projection is
y = coeff(basis(x)), one basis shared by the layers of a group; projections that read one input
(q/k/v, gate/up) share one basis GEMM. Load with
AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)."""
'''

MODEL = '''

from transformers import {base_config}, {base_model}  # noqa: E402


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
        self.fuse_bases(bool(config.frugalnn_compression.get("fuse", True)))

    def fuse_bases(self, enabled=True):
        """One GEMM for the bases of q/k/v and of gate/up (``enabled=False``: one per projection)."""
        return fuse_bases(self, enabled)
'''


def modules_source() -> str:
    """``modules.py`` without its docstring: the layer code every written modelling file carries."""
    source = inspect.getsource(modules)
    body = ast.parse(source).body
    first = body[1] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body[0]
    return "\n".join(source.splitlines()[first.lineno - 1 :]) + "\n"


@plugins.register("llm_modeling", LAYER_NAME)
def modeling_source(base_model: str, base_config: str, model_type: str) -> str:
    """The modelling file for a compressed model whose dense class is ``transformers.<base_model>``."""
    return (
        HEADER.format(base_model=base_model)
        + "\n"
        + modules_source()
        + MODEL.format(base_model=base_model, base_config=base_config, model_type=model_type)
    )
