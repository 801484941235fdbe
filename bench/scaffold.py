"""`kdbench new-method NAME`: a working, commented method file and its test."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from bench.errors import UsageError

METHOD_TEMPLATE = '''"""{title}: say in one line what this method does and cite where it comes from.

Written by `kdbench new-method {name}`. The contract is in methods/api.py and
docs/adding-a-method.md.

    kdbench run --smoke --methods {name}   # does it run? (seconds)
    kdbench run --methods {name}           # the protocol's full budget, every seed
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method


@register_method
class {cls}(Method):
    name = "{name}"  # what --methods and the result records call it
    description = "{title}: edit this line; `kdbench methods` shows it"
    family = "logit"  # reference | logit | feature | adversarial

    class Hparams(HParams):
        # Your hyper-parameters with their defaults; every result records them.
        T: float = 4.0  # softmax temperature
        alpha: float = 0.9  # weight of the distillation term against label cross-entropy

    # Stages to tap in both networks, e.g. ("stage2", "stage3"): their outputs are then in
    # step.student().features[stage] and step.teacher.features[stage].
    feature_taps = ()

    def loss(self, step: Step) -> torch.Tensor:
        # This starts as Hinton KD; replace it with your method's loss.
        s = step.student().logits  # the student on the clean batch
        t = step.teacher.logits  # the teacher on the clean batch (no gradient)
        T = self.hp.T
        kd = F.kl_div(F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1),
                      reduction="batchmean", log_target=True) * T * T
        return self.hp.alpha * kd + (1 - self.hp.alpha) * F.cross_entropy(s, step.batch.y)

    # Optional hooks (methods/api.py): extra_modules() for trainable connectors,
    # perturb(batch, student, teacher) for per-batch input transforms (e.g. adversarial
    # examples), on_epoch_start(epoch, epochs) for schedules.
'''

TEST_TEMPLATE = '''"""Tests of methods/{name}.py (written by `kdbench new-method {name}`).

Add a check of your loss against its formula, computed independently on hand-made tensors.
"""

import torch

import methods
from bench.plugin_check import one_step


def test_{name}_is_registered():
    specs, errors = methods.discover()
    assert "{name}" in specs, errors


def test_{name}_trains_for_one_step():
    loss = one_step(methods.discover()[0]["{name}"].cls)
    assert loss.dim() == 0 and torch.isfinite(loss)
'''

NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


def check_name(name: str, taken: set[str]) -> None:
    if not NAME.match(name) or keyword.iskeyword(name):
        raise UsageError(f"method name {name!r} must be 2-40 lowercase letters, digits or "
                         "underscores, starting with a letter (it becomes a module name)")
    if name in taken or name in ("api", "teacher"):
        raise UsageError(f"a method named {name!r} already exists; choose another name")


def write_method(name: str, root: Path, taken: set[str]) -> list[Path]:
    """Write methods/NAME.py and tests/test_method_NAME.py under `root`; never overwrite."""
    check_name(name, taken)
    method_file = root / "methods" / f"{name}.py"
    test_file = root / "tests" / f"test_method_{name}.py"
    for f in (method_file, test_file):
        if f.exists():
            raise UsageError(f"{f} already exists; not overwriting it")
        if not f.parent.is_dir():
            raise UsageError(f"{f.parent} does not exist: run new-method from the repository root")
    title = name.replace("_", " ").title()
    cls = "".join(part.title() for part in name.split("_"))
    method_file.write_text(METHOD_TEMPLATE.format(name=name, title=title, cls=cls))
    test_file.write_text(TEST_TEMPLATE.format(name=name))
    return [method_file, test_file]
