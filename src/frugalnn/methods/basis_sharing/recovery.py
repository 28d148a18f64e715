"""Optional recovery: LoRA on the coefficient matrices (peft), trained on the calibration windows.

The reference's recipe (spec, "Optional recovery"): r 8, alpha 32, lr 1e-4, 2 epochs, next-token loss.
Only the per-layer coefficients ``coeff`` get adapters; the shared bases stay frozen and shared. The
adapters are merged back afterwards, so the model keeps its shape and saves like any compressed model.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from frugalnn.methods.basis_sharing.config import Config


def lora_recover(
    model: nn.Module, config: Config, calib: torch.Tensor, progress: bool = True
) -> tuple[nn.Module, dict]:
    from peft import LoraConfig, get_peft_model

    start = time.perf_counter()
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules=["coeff"], bias="none"
    )
    with torch.random.fork_rng(devices=[]):  # peft draws lora_A from the global RNG: fix it, so a rerun
        torch.manual_seed(0)  # (or a killed run started again) gives the same weights bit for bit
        peft_model = get_peft_model(model, lora)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=config.lora_lr, weight_decay=0.0)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    losses: list[float] = []
    peft_model.train()
    steps = config.lora_epochs * -(-len(calib) // config.lora_batch_size)
    bar = tqdm(total=steps, desc="LoRA recovery", unit="step", disable=not progress)
    for _ in range(config.lora_epochs):
        order = torch.randperm(len(calib), generator=generator)
        for batch in calib[order].split(config.lora_batch_size):
            ids = batch.to(device)
            loss = peft_model(input_ids=ids, labels=ids, use_cache=False).loss
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    merged: Any = peft_model.merge_and_unload()
    merged.eval()
    for p in merged.parameters():
        p.requires_grad_(True)
    return merged, {
        "steps": len(losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds": time.perf_counter() - start,
    }
