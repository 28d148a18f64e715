"""Basis Sharing (arXiv 2410.03765): cross-layer shared SVD bases for LLM compression, with SVD, ASVD and
SVD-LLM as settings of the same code path.

    model, record = compress(model, BasisSharingConfig.preset("ours", ratio=0.3), calib_windows)
    model, record = frugalnn.apply(model, BasisSharingConfig(ratio=0.3), calib=calib_windows)
"""

from frugalnn.methods import register_method
from frugalnn.methods.basis_sharing import hf_modeling  # noqa: F401  (registers the llm_modeling plug-in)
from frugalnn.methods.basis_sharing.compress import compress
from frugalnn.methods.basis_sharing.config import BasisSharingConfig, Config, rank_for_ratio
from frugalnn.methods.basis_sharing.layers import Basis, SharedBasisLinear, fuse_bases

register_method(BasisSharingConfig, compress)

__all__ = [
    "Basis",
    "BasisSharingConfig",
    "Config",
    "SharedBasisLinear",
    "compress",
    "fuse_bases",
    "rank_for_ratio",
]
