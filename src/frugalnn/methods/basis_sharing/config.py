"""Basis Sharing configuration (arXiv 2410.03765), and the SVD / ASVD / SVD-LLM baselines as settings of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from frugalnn.errors import ConfigError

METHODS = ("basis-sharing", "svd-llm", "asvd", "svd")
ALLOCATIONS = ("uniform", "loss")
PROPAGATIONS = ("dense", "compressed")


@dataclass
class Config:
    """What to compress and how.

    ratio: share of each compressed matrix type's parameters removed (spec: k = floor(n·d_in·d_out·(1−r) /
        (d_in + n·d_out)), so r is measured over the decoder projections only; embeddings stay dense).
    method: ``basis-sharing`` (whitened SVD of n stacked layers), ``svd-llm`` (whitened, n = 1),
        ``asvd`` (columns scaled by mean|x|^alpha, n = 1), ``svd`` (plain truncated SVD, n = 1).
    group_size: n consecutive layers that share one basis (basis-sharing only; a leftover forms a smaller group).
    share: matrix types (module names relative to the decoder layer, e.g. ``self_attn.q_proj``, or roles
        q/k/v/qkv/o/up/gate/down) whose groups share a basis; None = the family default (see compress.py).
    types: which types to compress at all (names or roles); None = every linear in the decoder layers.
    asvd_alpha: ASVD's activation exponent (Sec. 3.2 of the ASVD paper; 0.5 as in the reference).
    eps: eigenvalue-shift added when the Gram matrix is not positive definite (reference: 7e-6, times
        the Gram's mean diagonal here so it is scale-free).
    propagate: ``dense`` — every layer's calibration inputs come from the dense model (the reference);
        ``compressed`` — from the already-compressed earlier layers (sequential, as SVD-LLM's update step).
    allocation: ``uniform`` — every type keeps (1 − ratio) of its parameters (the reference);
        ``loss`` — the same total budget, ranks given greedily to the matrices whose whitened singular
        values remove the most relative error per parameter.
    refit: re-solve each layer's coefficients for the shared basis with its own Gram matrix,
        C_i = (BᵀG_iB)⁻¹BᵀG_iW_i (the reference's unused closed form).
    rank: force this rank on every matrix (clipped to full rank) — for tests and ablations.
    calib_dtype: ``float32`` (the reference) or ``bfloat16``: the calibration forward runs on a bfloat16
        copy of each block (2.8× faster per layer on this CPU's avx512_bf16); the Gram matrices are still
        accumulated in float32/float64 from the bfloat16 activations. Dense propagation only.
    lora_epochs: > 0 runs LoRA recovery on the coefficient matrices (peft; r 8, alpha 32, lr 1e-4).
    """

    ratio: float = 0.2
    method: str = "basis-sharing"
    group_size: int = 2
    share: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    asvd_alpha: float = 0.5
    eps: float = 7e-6
    propagate: str = "dense"
    allocation: str = "uniform"
    refit: bool = False
    rank: int | None = None
    calib_batch_size: int = 8
    factor_dtype: str = "float64"
    calib_dtype: str = "float32"
    lora_epochs: int = 0
    lora_r: int = 8
    lora_alpha: int = 32
    lora_lr: float = 1e-4
    lora_batch_size: int = 4
    extra: dict = field(default_factory=dict)

    def validate(self, num_layers: int | None = None) -> Config:
        if not 0.0 < float(self.ratio) < 1.0:
            raise ConfigError(
                f"ratio must lie strictly between 0 and 1 (share of parameters removed), got {self.ratio}"
            )
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.group_size < 1:
            raise ConfigError(f"group_size must be at least 1, got {self.group_size}")
        if num_layers is not None and self.group_size > num_layers:
            raise ConfigError(
                f"group_size {self.group_size} is larger than the model's {num_layers} decoder layers; "
                f"use --group-size {num_layers} or less"
            )
        if self.propagate not in PROPAGATIONS:
            raise ConfigError(f"propagate must be one of {', '.join(PROPAGATIONS)}, got {self.propagate!r}")
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {self.allocation!r}")
        if self.factor_dtype not in ("float64", "float32"):
            raise ConfigError(f"factor_dtype must be float64 or float32, got {self.factor_dtype!r}")
        if self.calib_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"calib_dtype must be float32 or bfloat16, got {self.calib_dtype!r}")
        if self.calib_dtype == "bfloat16" and self.propagate != "dense":
            raise ConfigError(
                "calib_dtype bfloat16 needs propagate='dense'; use float32 for compressed propagation"
            )
        if self.rank is not None and self.rank < 1:
            raise ConfigError(f"rank must be positive, got {self.rank}")
        if self.calib_batch_size < 1 or self.lora_batch_size < 1:
            raise ConfigError("batch sizes must be positive")
        if self.lora_epochs < 0:
            raise ConfigError(f"lora_epochs must be 0 (off) or more, got {self.lora_epochs}")
        return self

    @property
    def effective_group_size(self) -> int:
        """Only Basis Sharing groups layers; the baselines factorise each matrix alone (n = 1)."""
        return self.group_size if self.method == "basis-sharing" else 1

    @property
    def whitening(self) -> str:
        return {"basis-sharing": "cholesky", "svd-llm": "cholesky", "asvd": "asvd", "svd": "none"}[
            self.method
        ]


def rank_for_ratio(ratio: float, d_in: int, d_out: int, n: int) -> int:
    """Spec rank: n layers of d_in×d_out share a d_in×k basis plus n k×d_out coefficient blocks.

    Parameters kept k·(d_in + n·d_out) = (1 − r)·n·d_in·d_out, so k = ⌊n·d_in·d_out·(1 − r)/(d_in + n·d_out)⌋,
    clipped to [1, min(d_in, n·d_out)] (the rank of the stacked matrix).
    """
    k = int((n * d_in * d_out * (1.0 - ratio)) // (d_in + n * d_out))
    return max(1, min(k, d_in, n * d_out))
