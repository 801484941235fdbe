"""One real training step of a method, outside a run: what a method's own test calls.

Builds the protocol's teacher and student (untrained), the method with its real context, taps the
declared stages, applies `perturb()` if the method has one, computes the loss and back-propagates.
Catches contract violations in a second instead of a run.
"""

from __future__ import annotations

import torch

from bench.data import Batch
from bench.engine import check_loss, apply_perturb, build_method
from bench.features import TappedModel
from bench.models import build_model
from bench.protocols import DEFAULT_PROTOCOL, get_protocol
from methods.api import Method, Step


def one_step(cls: type[Method], protocol_name: str = DEFAULT_PROTOCOL, batch_size: int = 16,
             seed: int = 0) -> torch.Tensor:
    """The loss of one step on random inputs, after backward(); raises MethodError on misuse."""
    p = get_protocol(protocol_name)
    torch.manual_seed(seed)
    student, teacher = build_model(p.student_arch, p), build_model(p.teacher_arch, p).eval()
    x = torch.rand(batch_size, *p.input_shape)
    batch = Batch(x, torch.randint(0, p.num_classes, (batch_size,)), torch.arange(batch_size))
    method = build_method(cls, cls.Hparams(), p, student, teacher if cls.uses_teacher else None, x)
    taps = tuple(cls.feature_taps)
    teacher_out = None
    if cls.uses_teacher:
        tapped_teacher = TappedModel(teacher, taps)
        with torch.no_grad():
            teacher_out = tapped_teacher(x)
        tapped_teacher.remove()
    student.train()
    batch = apply_perturb(method, batch, student, teacher_out)
    tapped = TappedModel(student, taps)
    try:
        loss = check_loss(method, method.loss(Step(batch, teacher_out, tapped, 0, 1)), 0, 0)
        loss.backward()
    finally:
        tapped.remove()
    return loss.detach()
