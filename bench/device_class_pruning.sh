#!/usr/bin/env bash
# The class-pruning grid on a lent GPU machine (one H200, 16 cores): every worker process fine-tunes on the
# GPU and scores / prunes / evaluates on one CPU thread of its own. Run from the repo root with the
# torch-pruning wheel in .whl/ and Fashion-MNIST under .gpudata/debian/usr/share/datasets/fashion-mnist/
# (see docs/class_pruning.md); rows go to $OUT/rows.jsonl, then
#   .venv/bin/python bench/bench_class_pruning.py import-rows --rows ROWS --prefix gpu
# Usage: bench/device_class_pruning.sh PLAN WORKERS SECONDS
plan=${1:-bench/plans/class_pruning_gpu.json}; workers=${2:-14}; seconds=${3:-480}
out=${OUT:-/tmp/out}; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src FRUGALNN_CACHE=$PWD/.gpudata OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import torch, torch_pruning; print('torch', torch.__version__, torch.cuda.get_device_name())"
# MPS lets the workers' small kernels run side by side instead of time-slicing the GPU between processes
if command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d; then
  timeout 60 python3 -c "import torch; print('MPS client ok', (torch.ones(4, device='cuda') + 1).sum().item())" \
    || { echo quit | nvidia-cuda-mps-control; echo "MPS did not work: off"; }
fi
# time per SGD step of one ResNet-20 worker (batch 128, distillation teacher), for the record
python3 - <<'PY'
import time, torch
from frugalnn.core.zoo import load_pretrained
from frugalnn.methods.class_pruning.distill import make_kd_loss
m, _, _ = load_pretrained("resnet20"); t = make_kd_loss(load_pretrained("resnet20")[0], 0.5, 4.0)
m.cuda().train(); opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
for i in range(60):
    if i == 10: torch.cuda.synchronize(); s = time.perf_counter()
    loss = t(m, x.cuda(), y.cuda()); opt.zero_grad(); loss.backward(); opt.step()
torch.cuda.synchronize(); print(f"one worker alone: {(time.perf_counter() - s) / 50 * 1e3:.1f} ms per step")
PY
timeout "$seconds" python3 bench/bench_class_pruning.py plan --plan "$plan" --rows "$out/rows.jsonl" \
  --workers "$workers" --device cuda 2>&1 | grep -v -i warn | tee "$out/log.txt"
echo quit | nvidia-cuda-mps-control 2>/dev/null; wc -l "$out/rows.jsonl"
