"""EncodingNet (arXiv 2402.18595): multiplier-free MACs from searched logic encoders.

One verb: ``encodingnet(model, EncodingConfig(...), data=..., encoder=...) -> (encoded model, record)``,
also reachable as ``frugalnn.apply(model, EncodingConfig(...), ...)``.
"""

from frugalnn.methods import register_method
from frugalnn.methods.encoding_mac.config import EncodingConfig
from frugalnn.methods.encoding_mac.encode import encode, encodingnet, exact_quantized, rebuild
from frugalnn.methods.encoding_mac.encoder import Encoder, exact_encoder
from frugalnn.methods.encoding_mac.layers import EncodedConv2d, EncodedLinear, encoded_layers
from frugalnn.methods.encoding_mac.search import search

register_method(EncodingConfig, encodingnet)

__all__ = [
    "EncodedConv2d",
    "EncodedLinear",
    "Encoder",
    "EncodingConfig",
    "encode",
    "encoded_layers",
    "encodingnet",
    "exact_encoder",
    "exact_quantized",
    "rebuild",
    "search",
]
