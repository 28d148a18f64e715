"""``encode(model, encoder)``: swap every Linear / Conv2d for its encoded twin; the method's verb.

The verb (``frugalnn.apply(model, EncodingConfig(...), data=..., encoder=...)``): search an encoder
(or take the given one), encode the model, calibrate activation scales on training images, and
fine-tune with the exact-product gradient (paper: 25 epochs, Adam, lr 1e-4; here ``finetune_epochs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from frugalnn.core import plugins
from frugalnn.core.data import ImageData
from frugalnn.core.measure import accuracy
from frugalnn.core.quant import calibrate
from frugalnn.core.train import TrainConfig, train
from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.methods.encoding_mac.config import EncodingConfig
from frugalnn.methods.encoding_mac.encoder import Encoder
from frugalnn.methods.encoding_mac.layers import EncodedConv2d, EncodedLinear, encoded_layers
from frugalnn.methods.encoding_mac.trained import freeze, make_trainable

TRANSFORM = "encodingnet"


def encode(model: nn.Module, encoder: Encoder) -> nn.Module:
    """Replace every Linear / Conv2d (plain or fake-quantised) by an encoded layer, in place."""
    lut = encoder.lut
    for name, child in list(model.named_children()):
        if isinstance(child, EncodedLinear | EncodedConv2d):
            new: nn.Module = (
                EncodedLinear(
                    child.in_features, child.out_features, child.bias is not None, lut, encoder.bits
                )
                if isinstance(child, EncodedLinear)
                else EncodedConv2d(child, lut, encoder.bits)
            )
        elif isinstance(child, nn.Linear):
            new = EncodedLinear(
                child.in_features, child.out_features, child.bias is not None, lut, encoder.bits
            )
        elif isinstance(child, nn.Conv2d):
            if child.padding_mode != "zeros" or isinstance(child.padding, str):
                raise UnsupportedModelError(
                    f"layer {name}: padding {child.padding!r} / {child.padding_mode} is not supported; "
                    "use numeric zero padding"
                )
            new = EncodedConv2d(child, lut, encoder.bits)
        else:
            encode(child, encoder)
            continue
        state = {k: v for k, v in child.state_dict().items() if k in ("weight", "bias", "act_scale")}
        new.load_state_dict(state, strict=False)
        new.to(child.weight.device)
        setattr(model, name, new)
    return model


@plugins.register("model_transform", TRANSFORM)
def rebuild(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """Checkpoint hook: re-encode a freshly built model with the encoder stored in checkpoint.json."""
    if "encoder" not in config:
        raise ConfigError("the encodingnet transform entry has no 'encoder'; re-create the checkpoint")
    return encode(model, Encoder.from_json(config["encoder"], "checkpoint encoder"))


def transform_entry(encoder: Encoder, cfg: EncodingConfig) -> dict[str, Any]:
    return {"name": TRANSFORM, "config": {"method": cfg.to_dict(), "encoder": encoder.to_json()}}


def finetune(
    model: nn.Module, data: ImageData, cfg: EncodingConfig, out_dir: Path | None, progress: bool
) -> dict:
    steps_per_epoch = len(data.x_train) // cfg.batch_size
    steps = int(round(cfg.finetune_epochs * steps_per_epoch))
    if cfg.max_steps:
        steps = min(steps, cfg.max_steps)
    if steps == 0:
        return {"steps": 0}
    epochs = -(-steps // steps_per_epoch)
    tc = TrainConfig(
        epochs=epochs, batch_size=cfg.batch_size, lr=cfg.finetune_lr, optimizer="adam", weight_decay=0.0,
        schedule="cosine", seed=cfg.seed, max_steps_per_epoch=-(-steps // epochs),
    )  # fmt: skip
    res = train(model, data, tc, out_dir=out_dir, progress=progress, evaluate_test=False)
    return {
        "steps": epochs * tc.max_steps_per_epoch,
        "seconds": res.seconds,
        "val_accuracy": res.val_accuracy,
    }


def encodingnet(
    model: nn.Module,
    config: EncodingConfig,
    data: ImageData | None = None,
    encoder: Encoder | None = None,
    calib_images: int = 2000,
    eval_images: int | None = None,
    progress: bool = True,
    work_dir: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Encode ``model`` (any nn.Module of Linear / Conv2d layers); fine-tune when ``data`` is given.

    ``encoder``: a searched :class:`Encoder` (default: run the search of ``config``);
    ``eval_images``: test images for the accuracies in the record (None: all).
    """
    from frugalnn.methods.encoding_mac.search import search

    config.validate()
    record: dict[str, Any] = {"config": config.to_dict()}
    if encoder is None:
        encoder, rec = search(config, Path(work_dir) / "search" if work_dir else None, progress)
        record["search"] = {k: v for k, v in rec.items() if k != "history"}
    elif encoder.bits != config.bits:
        raise ConfigError(
            f"encoder is for {encoder.bits}-bit codes but config bits is {config.bits}; match them"
        )
    encode(model, encoder)
    if not encoded_layers(model):
        raise UnsupportedModelError("the model has no Linear or Conv2d layer to encode")
    record.update(encoder_max_re=encoder.max_re, encoder_area=encoder.area, kept_bits=len(encoder.kept))
    record["error_rank"] = {
        n: int(m.err_u.shape[1]) for n, m in model.named_modules() if m in encoded_layers(model)
    }
    if data is not None:
        calibrate(model, data.x_train[:calib_images])
        x_t, y_t = data.x_test[:eval_images], data.y_test[:eval_images]
        record["acc_before_finetune"] = accuracy(model, x_t, y_t, batch_size=128)
        ft_dir = Path(work_dir) / "finetune" if work_dir else None
        if config.position_weights == "trained":
            weights = make_trainable(model, encoder)
            record["finetune"] = finetune(model, data, config, ft_dir, progress)
            record["solved_max_re"] = encoder.max_re
            encoder = freeze(model, encoder, weights)
            record.update(encoder_max_re=encoder.max_re, trained_weights=encoder.weights)
        else:
            record["finetune"] = finetune(model, data, config, ft_dir, progress)
        record["acc"] = accuracy(model, x_t, y_t, batch_size=128)
    model.eval()
    record["transform"] = transform_entry(encoder, config)
    return model, record


def exact_quantized(model: nn.Module, bits: int) -> nn.Module:
    """The exact B-bit reference: the same layers with exact products (per-channel weights)."""
    from frugalnn.core.quant import QuantConfig, quantize_model

    return quantize_model(model, QuantConfig(bits, bits, per_channel=True))
