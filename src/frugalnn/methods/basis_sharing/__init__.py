"""Basis Sharing (arXiv 2410.03765): cross-layer shared SVD bases for LLM compression, with SVD, ASVD and
SVD-LLM as settings of the same code path. ``compress(model, Config(...), calib) -> (model, record)``."""

from frugalnn.methods.basis_sharing.compress import compress
from frugalnn.methods.basis_sharing.config import Config, rank_for_ratio
from frugalnn.methods.basis_sharing.layers import Basis, SharedBasisLinear

__all__ = ["Basis", "Config", "SharedBasisLinear", "compress", "rank_for_ratio"]
