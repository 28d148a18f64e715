"""Shared-basis linear layers, y = (x B) C_i + b, and fused basis GEMMs (torch only).

This file imports nothing from frugalnn: ``hf_modeling`` copies its source into every compressed folder's
``modeling_frugalnn.py``, so frugalnn and plain transformers (``trust_remote_code=True``) run the same code.

``Basis`` holds B (stored as a k×d_in weight so ``F.linear`` applies it); the *same* Basis instance is a
child of every ``SharedBasisLinear`` of its group (Basis Sharing, arXiv 2410.03765, Sec. 3), so the basis is
one tensor in memory and ``model.parameters()`` counts it once. The coefficients are an ordinary
``nn.Linear(k, d_out)`` named ``coeff``, so peft's LoRA can target them by name.

Fused bases. q/k/v read one tensor (the normed hidden state) and so do gate/up. ``fuse_bases(model)``
lets such projections share one GEMM, x·[B_q B_k B_v], whose columns each projection then multiplies
by its own C_i: one thin GEMM instead of three (two). The concatenated weight is derived from the Basis
parameters (the file format does not change), one tensor per distinct tuple of bases, so layers whose
bases are shared share it too; it is rebuilt when a basis changes (storage, dtype, device, in-place
update). A projection only takes the fused result for the very tensor the first one was given (checked
by identity), so a model whose projections read different tensors stays correct, just unfused.
"""

from collections.abc import Iterable

import torch
from torch import nn

# projections (by attribute name) that read one input inside one parent module, and so can share a GEMM
FUSE_FAMILIES = (
    ("q_proj", "k_proj", "v_proj", "wq", "wk", "wv"),
    ("gate_proj", "up_proj", "w1", "w3"),
)


class Basis(nn.Module):
    """The shared basis B ∈ ℝ^{d_in×k}, stored transposed as ``weight`` [k, d_in]."""

    def __init__(self, in_features: int, rank: int, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.rank = rank
        self.weight = nn.Parameter(torch.empty(rank, in_features, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)


class FusedBases:
    """[B_1 … B_m] of bases whose projections read one input, as one [Σk, d_in] weight (derived)."""

    def __init__(self, bases: Iterable[Basis]) -> None:
        self.bases = tuple(bases)
        self.bounds = [0]
        for basis in self.bases:
            self.bounds.append(self.bounds[-1] + basis.rank)
        self._weight: torch.Tensor | None = None
        self._stamp: tuple = ()

    def usable(self) -> bool:
        """False while autograd must reach the bases (the fused copy is detached from them)."""
        return not (torch.is_grad_enabled() and any(b.weight.requires_grad for b in self.bases))

    def weight(self) -> torch.Tensor:
        weights = [b.weight for b in self.bases]
        stamp = tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in weights)
        stale = self._weight is None or stamp != self._stamp
        if stale or (self._weight.is_inference() and not torch.is_inference_mode_enabled()):
            # an inference-mode copy cannot take part in autograd (e.g. LoRA on the coefficients later)
            self._weight = torch.cat([w.detach() for w in weights])
            self._stamp = stamp
        return self._weight


class FusedInput:
    """One module's projections that share a FusedBases: the first call computes x·[B_1 … B_m], each
    member takes its columns, and the product is dropped once every member has read it."""

    def __init__(self, fused: FusedBases, members: int) -> None:
        self.fused = fused
        self.members = members
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        self._left = 0

    def project(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if self._left == 0 or x is not self._x:
            self._y = nn.functional.linear(x, self.fused.weight())
            self._x, self._left = x, self.members
        y = self._y
        self._left -= 1
        if self._left == 0:
            self._x = self._y = None
        return y[..., self.fused.bounds[index] : self.fused.bounds[index + 1]]


class SharedBasisLinear(nn.Module):
    """Replacement for one nn.Linear / GPT-2 Conv1D: ``coeff(basis(x))``, same input/output contract."""

    def __init__(self, basis: Basis, out_features: int, bias: bool, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.basis = basis
        self.coeff = nn.Linear(basis.rank, out_features, bias=bias, dtype=dtype)
        self.in_features = basis.in_features
        self.out_features = out_features
        self.fused_input: FusedInput | None = None  # set by fuse_bases; a plain attribute, not state
        self.fused_index = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        site = self.fused_input
        if site is not None and site.fused.usable():
            return self.coeff(site.project(x, self.fused_index))
        return self.coeff(self.basis(x))

    def extra_repr(self) -> str:
        fused = "" if self.fused_input is None else f", fused={self.fused_input.members}"
        return f"in={self.in_features}, rank={self.basis.rank}, out={self.out_features}{fused}"


def fuse_bases(model: nn.Module, enabled: bool = True) -> int:
    """Let the projections of each ``FUSE_FAMILIES`` set inside one module share one basis GEMM (or, with
    ``enabled=False``, undo it); returns how many such sets there are. Outputs equal the unfused ones up to
    float rounding; one FusedBases per distinct tuple of bases, so cross-layer sharing carries over."""
    shared: dict[tuple[int, ...], FusedBases] = {}
    sites = 0
    for parent in model.modules():
        children = {n: m for n, m in parent.named_children() if isinstance(m, SharedBasisLinear)}
        for child in children.values():
            child.fused_input, child.fused_index = None, 0
        if not enabled:
            continue
        for family in FUSE_FAMILIES:
            members = [children[n] for n in family if n in children]
            bases = [m.basis for m in members]
            if (
                len(members) < 2
                or len({id(b) for b in bases}) != len(bases)
                or len({(b.in_features, b.weight.dtype, b.weight.device) for b in bases}) != 1
            ):
                continue
            fused = shared.setdefault(tuple(id(b) for b in bases), FusedBases(bases))
            site = FusedInput(fused, len(members))
            for index, member in enumerate(members):
                member.fused_input, member.fused_index = site, index
            sites += 1
    return sites
