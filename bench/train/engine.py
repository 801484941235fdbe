"""The training engine: one loop for the teacher and every method.

Deterministic on CPU for a given seed: the batch order, the initial weights and every random draw
inside a method come from generators seeded by the job's seed. The weights of the final epoch are
what gets evaluated, never a best-epoch pick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench import faults
from bench.checkpoints import load_training_state, save_training_state
from bench.data.split import Batch, train_batches
from bench.errors import MethodError
from bench.models.taps import Outputs, feature_shapes, tapped
from bench.progress import Reporter
from bench.protocols import Protocol, TrainRecipe
from bench.train import device as dev
from bench.train.teacher_outputs import TeacherQuery, TeacherSource
from methods.api import Method, MethodContext, Step


@dataclass(frozen=True)
class TrainStats:
    epochs: int
    steps: int
    final_epoch_loss: float  # mean training loss over the last epoch
    wall_s: float | None
    # Images the teacher ran on at a method's request (Method.query_teacher), beyond the outputs
    # on the clean batch every KD method gets: part of what the method costs.
    teacher_query_images: int = 0


def make_optimizer(params: list[nn.Parameter], recipe: TrainRecipe, steps: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                          weight_decay=recipe.weight_decay)
    if recipe.schedule != "onecycle":  # bench.protocols.Schedule lists the schedules
        raise ValueError(f"unknown schedule {recipe.schedule!r}")
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=steps, pct_start=recipe.warmup_frac,
        anneal_strategy="cos", cycle_momentum=False)
    return opt, sched


def _arch_name(model: nn.Module) -> str:
    zoo = getattr(model, "zoo_name", None)  # a RobustBench zoo teacher (bench/models/zoo.py)
    return f"robustbench:{zoo} ({type(model).__name__})" if zoo else type(model).__name__


def build_method(spec_cls: type[Method], hparams, protocol: Protocol, student: nn.Module,
                 teacher: nn.Module | None, example: torch.Tensor) -> Method:
    taps = tuple(spec_cls.feature_taps)
    stages = tuple(s for s in getattr(student, "stages", ())
                   if teacher is None or s in getattr(teacher, "stages", ()))
    unknown = [t for t in taps if t not in stages]
    if unknown:
        which = ", ".join(f"the {role} {_arch_name(m)} has {list(getattr(m, 'stages', ()))}"
                          for role, m in (("teacher", teacher), ("student", student))
                          if m is not None)
        raise MethodError(spec_cls.name, str(spec_cls.source_file()),
                          f"feature_taps {unknown} are not stages of both architectures "
                          f"(available: {list(stages)}; {which})")
    ctx = MethodContext(
        protocol=protocol, stages=stages,
        student_shapes=feature_shapes(student, taps, example),
        teacher_shapes=feature_shapes(teacher, taps, example) if teacher is not None else {},
    )
    return spec_cls(hparams, ctx)


def check_loss(method: Method, loss: object, epoch: int, step: int, finite: bool = True
               ) -> torch.Tensor:
    """The loss is a scalar with a gradient, and (when `finite`, which costs a host sync) finite."""
    where = f"at epoch {epoch + 1}, step {step + 1}"
    if not isinstance(loss, torch.Tensor):
        raise MethodError(method.name, str(method.source_file()),
                          f"loss() returned {type(loss).__name__}, expected a scalar tensor ({where})")
    if loss.numel() != 1:
        raise MethodError(method.name, str(method.source_file()),
                          f"loss() returned a tensor of shape {tuple(loss.shape)}, expected a "
                          f"scalar ({where}); reduce it with .mean()")
    if not loss.requires_grad:
        raise MethodError(method.name, str(method.source_file()),
                          f"loss() returned a tensor with no gradient ({where}); it must depend "
                          "on the student's outputs")
    if finite and not math.isfinite(loss.item()):
        raise MethodError(method.name, str(method.source_file()),
                          f"loss() returned {loss.item()} {where}; check for log(0), division "
                          "by zero or an exploding learning signal")
    return loss


def train(model: nn.Module, method: Method, recipe: TrainRecipe, x: torch.Tensor,
          y: torch.Tensor, seed: int, teacher_outputs: TeacherSource | None = None,
          reporter: Reporter | None = None, label: str = "train",
          state_path: Path | None = None, fault_key: str = "",
          augmentation: str = "none") -> TrainStats:
    """Train `model` in place with `method`'s loss under `recipe`; returns the final-epoch stats.

    With `state_path`, the whole training state (weights, connectors, optimiser, schedule, every
    random generator, the method's own state) is saved there after each epoch, and a later call
    resumes from it: the result is bit-identical to an uninterrupted run on CPU.

    `augmentation` is the protocol's (bench/data/augment.py). On CUDA the forward passes run
    under bf16 autocast and the loss is checked for finiteness once per epoch rather than per
    step (each check is a host sync that stalls the GPU; bench/train/device.py).
    """
    reporter = reporter or Reporter(quiet=True)
    gen = torch.Generator().manual_seed(seed)
    taps = tuple(method.feature_taps)
    query = None
    if method.uses_teacher:
        if teacher_outputs is None:
            raise ValueError(f"method {method.name!r} needs the teacher's outputs")
        teacher_outputs.ensure(taps)
        query = TeacherQuery(teacher_outputs.teacher)
    extra = method.extra_modules()
    if extra is not None:
        extra.to(x.device).train()
    params = list(model.parameters()) + (list(extra.parameters()) if extra is not None else [])
    steps_per_epoch = math.ceil(x.shape[0] / recipe.batch_size)
    opt, sched = make_optimizer(params, recipe, recipe.epochs * steps_per_epoch)
    start = time.perf_counter()
    sync_each_step = dev.checks_every_step(x.device)
    epoch_loss, first_epoch, earlier_wall, earlier_queries = float("nan"), 0, 0.0, 0
    if state_path is not None and Path(state_path).exists():
        state = load_training_state(state_path, str(x.device))
        model.load_state_dict(state["model"])
        if extra is not None:
            extra.load_state_dict(state["extra"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        gen.set_state(state["gen"])
        method.load_state_dict(state["method"])
        first_epoch, epoch_loss, earlier_wall = state["epoch"] + 1, state["loss"], state["wall_s"]
        earlier_queries = state.get("teacher_query_images", 0)
        reporter.log(f"{label}: resuming after epoch {first_epoch}/{recipe.epochs}")

    def queries() -> int:
        return earlier_queries + (query.images if query is not None else 0)

    with teacher_attached(method, query), tapped(model, taps) as student:
        with reporter.task(label, total=recipe.epochs * steps_per_epoch) as bar:
            bar.advance(first_epoch * steps_per_epoch)
            for epoch in range(first_epoch, recipe.epochs):
                method.on_epoch_start(epoch, recipe.epochs)
                model.train()
                total, count = 0.0, 0
                for i, batch in enumerate(train_batches(x, y, recipe.batch_size, gen,
                                                        augmentation)):
                    teacher = (teacher_outputs.outputs(batch, taps)
                               if method.uses_teacher else None)
                    with dev.autocast(x.device):
                        batch = apply_perturb(method, batch, model, teacher)
                        step = Step(batch, teacher, student, epoch, recipe.epochs, query)
                        loss = check_loss(method, method.loss(step), epoch, i,
                                          finite=sync_each_step)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    if sync_each_step:
                        total += loss.item() * batch.y.shape[0]
                    else:  # summed on the device; read once per epoch
                        total = total + loss.detach().float() * batch.y.shape[0]
                    count += batch.y.shape[0]
                    bar.advance()
                epoch_loss = float(total) / count
                if not math.isfinite(epoch_loss):  # CUDA; on CPU the step's check raised already
                    raise MethodError(method.name, str(method.source_file()),
                                      f"loss() returned non-finite values during epoch "
                                      f"{epoch + 1}; check for log(0), division by zero or an "
                                      "exploding learning signal")
                bar.info(f"epoch {epoch + 1}/{recipe.epochs} loss {epoch_loss:.4f}")
                if state_path is not None:
                    save_training_state(state_path, {
                        "epoch": epoch, "loss": epoch_loss, "model": model.state_dict(),
                        "extra": extra.state_dict() if extra is not None else {},
                        "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": torch.get_rng_state(), "gen": gen.get_state(),
                        "cuda_rng": torch.cuda.get_rng_state() if x.is_cuda else None,
                        "method": method.state_dict(), "teacher_query_images": queries(),
                        "wall_s": earlier_wall + time.perf_counter() - start})
                faults.reached(f"train-epoch:{fault_key}:{epoch + 1}")
    model.eval()
    return TrainStats(recipe.epochs, recipe.epochs * steps_per_epoch, epoch_loss,
                      earlier_wall + time.perf_counter() - start, queries())


@contextlib.contextmanager
def teacher_attached(method: Method, query: TeacherQuery | None) -> Iterator[None]:
    """`method.query_teacher` answers for the duration of a training, and never outside it."""
    method._teacher_query = query
    try:
        yield
    finally:
        method._teacher_query = None


def apply_perturb(method: Method, batch: Batch, model: nn.Module, teacher: Outputs | None) -> Batch:
    """The method's `perturb()` with the student in the mode it declares: eval by default, so
    batch-norm statistics are not updated by attack steps (as in TRADES and RSLAD's code); train
    where the official code attacks in train mode (ARD)."""
    if not method.has_perturb():
        return batch
    was_training = model.training
    model.train(method.perturb_mode == "train")
    try:
        x_adv = method.perturb(batch, model, teacher)
    finally:
        model.train(was_training)
    if x_adv is None:
        return batch
    if not isinstance(x_adv, torch.Tensor) or x_adv.shape != batch.x.shape:
        got = tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__
        raise MethodError(method.name, str(method.source_file()),
                          f"perturb() returned {got}, expected a tensor of shape "
                          f"{tuple(batch.x.shape)} like the batch")
    return dataclasses.replace(batch, x_adv=x_adv.detach())
