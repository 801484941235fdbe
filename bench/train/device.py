"""The GPU speed paths, in one place: bf16 autocast, cuDNN autotuning, optional torch.compile.

None of them changes anything on CPU, where runs stay float32 and bit-reproducible for a seed.

- Training (the model's forward passes, the loss, and the training-time attacks of adversarial
  methods) runs under bf16 autocast on CUDA; so does the online teacher
  (bench/train/teacher_outputs.py).
  bf16 has float32's range, so no loss scaling is needed. Parameters, optimiser state and losses
  (softmax, cross-entropy, KL: autocast runs them in float32) stay float32.
- Evaluation attacks (torchattacks FGSM/PGD, AutoAttack, Square) run in float32: the reported
  robust accuracy should not depend on how many bits the input gradient kept. PyTorch's default
  lets cuDNN use TF32 for float32 convolutions, as RobustBench's evaluations do.
- `torch.backends.cudnn.benchmark`: every batch of a run has one of a few shapes, so picking the
  fastest convolution algorithm once per shape pays for itself.
- `kdbench run --compile` compiles the student and the teacher for training (default off; CUDA
  only: the CLI refuses it on CPU).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


def configure(device: torch.device | str) -> None:
    """Per-process speed settings for work on `device`."""
    if is_cuda(device):
        torch.backends.cudnn.benchmark = True


def configure_job(device: torch.device | str, threads: int) -> None:
    """The per-process settings records depend on, the same in every process that runs jobs (the
    CLI, a worker, a Ray task): `threads` torch threads, deterministic kernels on CPU."""
    torch.set_num_threads(threads)
    if not is_cuda(device):
        torch.use_deterministic_algorithms(True)
    configure(device)


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere."""
    if is_cuda(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def checks_every_step(device: torch.device | str) -> bool:
    """Whether training checks each step's loss for finiteness (`loss.item()`, a host sync).
    On CUDA a sync per step stalls the GPU's queue, so the engine sums the loss on the device
    and checks once per epoch; on CPU it costs nothing and names the exact step."""
    return not is_cuda(device)


def compile_for_training(model: nn.Module, enabled: bool) -> nn.Module:
    """`model`, compiled in place when `enabled` (same object, same state_dict keys); callers
    pass a model that is used for training and evaluation only, never deep-copied afterwards
    (a copy would keep calling the original's compiled forward)."""
    if enabled:
        if not any(p.is_cuda for p in model.parameters()):
            raise ValueError("torch.compile is only used on CUDA")
        model.compile()
    return model
