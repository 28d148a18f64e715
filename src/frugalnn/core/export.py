"""Export a model to ONNX, TorchScript or a ``torch.export`` program, and run the exported file.

``export_model`` writes atomically (temp file + rename) with a dynamic batch dimension;
``run_exported`` runs the file with the runtime that reads it (ONNX Runtime, ``torch.jit.load``,
``torch.export.load``), so a caller can check the export against PyTorch on real inputs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from frugalnn.errors import ConfigError, ToolError

FORMATS = ("onnx", "torchscript", "torch.export")


def _outputs(result: object) -> list[np.ndarray]:
    items = result if isinstance(result, tuple | list) else [result]
    return [np.asarray(t.detach().numpy() if isinstance(t, torch.Tensor) else t) for t in items]


def export_model(model: nn.Module, example: torch.Tensor, fmt: str, path: str | Path) -> Path:
    """Write ``model`` (eval mode) traced on ``example`` (batch >= 2) as ``fmt`` to ``path``."""
    if fmt not in FORMATS:
        raise ConfigError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if example.shape[0] < 2:
        raise ConfigError("example needs a batch of at least 2 so the batch dimension stays dynamic")
    path = Path(path)
    if fmt == "torch.export" and path.suffix != ".pt2":
        raise ConfigError(f"a torch.export program is a .pt2 archive; name the file {path.stem}.pt2")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        batch = torch.export.Dim("batch", min=1)
        if fmt == "onnx":
            try:
                import onnxscript  # noqa: F401  (the current exporter needs it)
            except ImportError:
                raise ToolError("ONNX export needs onnxscript: pip install 'frugalnn[export]'") from None
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=["images"], dynamic_shapes=({0: batch},),
                verbose=False,
            )  # fmt: skip
            program.save(tmp)
        elif fmt == "torchscript":
            with torch.no_grad():
                torch.jit.trace(model, example).save(tmp)
        else:
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def run_exported(path: str | Path, fmt: str, x: torch.Tensor) -> list[np.ndarray]:
    """The outputs of the exported file on ``x``, as numpy arrays."""
    path = str(path)
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ToolError("running ONNX needs onnxruntime: pip install 'frugalnn[export]'") from None
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        if fmt == "torchscript":
            return _outputs(torch.jit.load(path)(x))
        return _outputs(torch.export.load(path).module()(x))


def max_abs_difference(model: nn.Module, path: str | Path, fmt: str, x: torch.Tensor) -> float:
    """Largest |exported - PyTorch| over every output on ``x``."""
    with torch.no_grad():
        want = _outputs(model.eval()(x))
    got = run_exported(path, fmt, x)
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want)):
        raise ToolError(f"the exported {fmt} model gives outputs of other shapes than the PyTorch model")
    return max(float(np.abs(g.astype(np.float64) - w.astype(np.float64)).max()) for g, w in zip(got, want))
