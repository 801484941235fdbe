"""One real training step of a method, outside a run: what a method's own test calls.

Builds the protocol's teacher and student (untrained), the method with its real context, taps the
declared stages, applies `perturb()` if the method has one, computes the loss and back-propagates.
Catches contract violations in a second instead of a run.
"""

from __future__ import annotations

import torch

from bench.data.split import Batch
from bench.models.registry import build_model
from bench.models.taps import tapped
from bench.protocols import DEFAULT_PROTOCOL, get_protocol
from bench.train.engine import teacher_attached, apply_perturb, build_method, check_loss
from bench.train.teacher_outputs import TeacherQuery
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
    teacher_out, query = None, None
    if cls.uses_teacher:
        query = TeacherQuery(teacher)
        with torch.no_grad():
            teacher_out = query(x, taps)
    student.train()
    with teacher_attached(method, query), tapped(student, taps) as s:
        batch = apply_perturb(method, batch, student, teacher_out)
        loss = check_loss(method, method.loss(Step(batch, teacher_out, s, 0, 1, query)), 0, 0)
        loss.backward()
    return loss.detach()
