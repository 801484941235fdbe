"""Throughput of a protocol's parts, and the wall time of one seed of its full benchmark.

    python -m bench.perf --device cuda --protocol cifar10      # `make perf-gpu`
    python -m bench.perf --device cpu --smoke --n-train 32 --n-eval 16   # seconds; what tests run

Everything runs through the code a real run uses (bench.engine.train with the protocol's
augmentation and teacher source, bf16 autocast on CUDA; the evaluation suite in float32), on
random tensors of the protocol's input shape, so no dataset is needed. Measured:

- training images/s of the teacher (with the protocol's teacher method) and of the student under
  every method (adversarial methods include their PGD steps, KD methods the online teacher);
- PGD images/s (the evaluation attack, torchattacks, the protocol's steps) for teacher and student;
- the online teacher's forward pass alone, images/s;
- each evaluator's time on `--n-eval` test images, the corruption generation, the efficiency
  measurement (latency timers).

The estimate scales those to the protocol: epochs x n_train / images/s per training; evaluator
times linearly in the number of test images each one uses (clean, attacks and corruptions all
n_test; the eps curve and the sanity checks at most curve_n / sanity_n); and sums the teacher,
every measured method once (one seed), the teacher row's and every student's evaluation, the
transfer examples (crafted once per run), the corrupted test set (generated once per run) and the
efficiency measurement. Not included: reading the dataset and process start-up (seconds), and
anything that depends on what the models learned (Square stops early on examples it has already
fooled, so on untrained models it costs less than on trained ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import methods
from attacks.adversarial import make_attack, robust_mask
from bench.data.split import Batch
from bench.eval.corruptions import CorruptedTestSet
from bench.eval.sanity import TransferSource
from bench.eval.context import EvalContext
from bench.eval.suite import default_evaluators, measure_efficiency
from bench.models.registry import build_model
from bench.progress import Reporter
from bench.protocols import Protocol, get_protocol
from bench.train import device as dev
from bench.train.engine import build_method, train
from bench.train.teacher import teacher_method
from bench.train.teacher_outputs import OnlineTeacher, teacher_source


def _sync(device: str) -> None:
    if dev.is_cuda(device):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> float:
    """Seconds `fn` takes, the device's queue drained before and after."""
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def random_data(p: Protocol, n: int, device: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *p.input_shape, generator=g)
    y = torch.randint(0, p.num_classes, (n,), generator=g)
    return x.to(device), y.to(device)


def train_ips(p: Protocol, arch: str, method_cls, x: torch.Tensor, y: torch.Tensor,
              recipe, teacher: torch.nn.Module | None, device: str, compile: bool) -> float:
    """Training images/s of one epoch over x, after one warm-up epoch on a slice of it (kernel
    selection, compilation and allocation happen there)."""
    torch.manual_seed(0)
    model = build_model(arch, p).to(device)
    method = build_method(method_cls, method_cls.Hparams(), p, model, teacher, x)
    source = teacher_source(p, teacher, x) if teacher is not None else None
    if source is not None:
        source.ensure(tuple(method.feature_taps))  # a cache is computed once per run: not timed
    model = dev.compile_for_training(model, compile)
    one = dataclasses.replace(recipe, epochs=1)
    warm = min(len(x), 2 * recipe.batch_size)  # a prefix: cached outputs stay at their index
    train(model, method, one, x[:warm], y[:warm], 0, source, augmentation=p.augmentation)
    wall = timed(lambda: train(model, method, one, x, y, 0, source, augmentation=p.augmentation),
                 device)
    return len(x) / wall


def pgd_ips(p: Protocol, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
            device: str) -> float:
    e = p.eval
    model.eval()
    attack = make_attack("pgd", model, e.eps, e.pgd_steps, e.pgd_step_size, e.pgd_random_start)
    robust_mask(model, attack, x[:e.eval_batch_size], y[:e.eval_batch_size], e.eval_batch_size)
    return len(x) / timed(lambda: robust_mask(model, attack, x, y, e.eval_batch_size), device)


def online_teacher_ips(p: Protocol, teacher: torch.nn.Module, x: torch.Tensor,
                       device: str) -> float:
    source, bs = OnlineTeacher(teacher), p.student_recipe.batch_size
    batches = [Batch(x[i:i + bs], x.new_zeros(0), x.new_zeros(0)) for i in range(0, len(x), bs)]
    source.outputs(batches[0], ())

    def run():
        for b in batches:
            source.outputs(b, ())
    return len(x) / timed(run, device)


def eval_scale(p: Protocol, name: str, n_eval: int) -> float:
    """How much longer evaluator `name` runs on the protocol's test set than on n_eval images."""
    e = p.eval
    capped = {"eps_curve": e.curve_n, "sanity": e.sanity_n, "autoattack": e.autoattack_n}
    cap = capped.get(name)
    if cap is None:
        return p.n_test / n_eval
    return min(cap, p.n_test) / min(cap, n_eval)


def eval_times(p: Protocol, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
               device: str, corrupted: CorruptedTestSet, transfer: TransferSource | None
               ) -> dict[str, float]:
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    ctx = EvalContext(p, x, y, device, Reporter(quiet=True), False, transfer, corrupted)
    return {ev.name: timed(lambda ev=ev: ev(model, ctx), device) for ev in default_evaluators()}


def measure(protocol: str = "cifar10", device: str = "cpu", n_train: int = 10240,
            n_eval: int = 2000, smoke: bool = False, method_names: list[str] | None = None,
            compile: bool = False, log: Callable[[str], None] = print) -> dict:
    """Measure every part on `device` and estimate one seed of the protocol; returns a report."""
    p = get_protocol(protocol)
    if smoke:
        p = p.for_smoke()
    dev.configure(device)
    specs, _ = methods.discover()
    names = method_names or sorted(specs)
    xt, yt = random_data(p, n_train, device, seed=0)
    xe, ye = random_data(p, n_eval, device, seed=1)
    tcls = teacher_method(p)
    r: dict = {"protocol": p.name, "protocol_hash": p.hash, "smoke": p.smoke, "device": device,
               "device_name": (torch.cuda.get_device_name() if dev.is_cuda(device)
                               else "cpu"),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "bf16_autocast": dev.is_cuda(device), "compile": compile,
               "n_train_measured": n_train, "n_eval_measured": n_eval, "ips": {}, "seconds": {}}
    ips, sec = r["ips"], r["seconds"]

    log(f"teacher {p.teacher_arch}: training with {tcls.name!r}")
    ips[f"train teacher ({tcls.name})"] = train_ips(p, p.teacher_arch, tcls, xt, yt,
                                                    p.teacher_recipe, None, device, compile)
    torch.manual_seed(0)
    teacher = build_model(p.teacher_arch, p).to(device).eval()
    student = build_model(p.student_arch, p).to(device).eval()
    for name in names:
        cls = specs[name].cls
        log(f"student {p.student_arch}: training with {name!r}")
        ips[f"train student ({name})"] = train_ips(p, p.student_arch, cls, xt, yt,
                                                   p.student_recipe,
                                                   teacher if cls.uses_teacher else None,
                                                   device, compile)
    ips["online teacher forward"] = online_teacher_ips(p, teacher, xt, device)
    ips[f"PGD-{p.eval.pgd_steps} teacher"] = pgd_ips(p, teacher, xe, ye, device)
    ips[f"PGD-{p.eval.pgd_steps} student"] = pgd_ips(p, student, xe, ye, device)

    log("evaluation suite")
    corrupted = CorruptedTestSet(xe, p.eval.seed, suite=p.eval.corruption_suite)
    sec["corruption generation"] = timed(
        lambda: [corrupted.get(c, s) for c in p.eval.corruptions for s in p.eval.severities],
        device)
    transfer = TransferSource(teacher, "teacher")
    n_transfer = min(p.eval.sanity_n, n_eval)
    sec["transfer examples"] = timed(
        lambda: transfer.examples(xe[:n_transfer], ye[:n_transfer], p), device)
    sec["evaluate teacher"] = eval_times(p, teacher, xe, ye, device, corrupted, None)
    sec["evaluate student"] = eval_times(p, student, xe, ye, device, corrupted, transfer)
    sec["efficiency (both archs)"] = (timed(lambda: measure_efficiency(teacher, p), device)
                                      + timed(lambda: measure_efficiency(student, p), device))
    r["estimate"] = estimate(p, r, names, tcls.name)
    return r


def estimate(p: Protocol, r: dict, names: list[str], tname: str) -> dict:
    """Seconds of one seed of the protocol's benchmark, by part (see the module docstring)."""
    ips, sec, n_eval = r["ips"], r["seconds"], r["n_eval_measured"]

    def eval_s(times: dict[str, float]) -> float:
        return sum(t * eval_scale(p, name, n_eval) for name, t in times.items())

    parts = {
        "teacher training": p.teacher_recipe.epochs * p.n_train / ips[f"train teacher ({tname})"],
        "student training": {n: p.student_recipe.epochs * p.n_train / ips[f"train student ({n})"]
                             for n in names},
        "corrupted test set": sec["corruption generation"] * p.n_test / n_eval,
        "transfer examples": sec["transfer examples"] * eval_scale(p, "sanity", n_eval),
        "evaluation, teacher row": eval_s(sec["evaluate teacher"]),
        "evaluation, per student": eval_s(sec["evaluate student"]),
        "efficiency": sec["efficiency (both archs)"],
    }
    total = (parts["teacher training"] + sum(parts["student training"].values())
             + parts["corrupted test set"] + parts["transfer examples"]
             + parts["evaluation, teacher row"] + len(names) * parts["evaluation, per student"]
             + parts["efficiency"])
    return {"parts_s": parts, "methods": names, "total_s": total}


def render(r: dict) -> str:
    lines = [f"{r['protocol']} ({r['protocol_hash']}{', smoke' if r['smoke'] else ''}) on "
             f"{r['device_name']}, torch {r['torch']}, bf16 autocast "
             f"{'on' if r['bf16_autocast'] else 'off'}, compile {'on' if r['compile'] else 'off'}"]
    lines.append("images/s:")
    lines += [f"  {k:<40} {v:>12,.0f}" for k, v in r["ips"].items()]
    est = r["estimate"]
    lines.append(f"estimated wall time of one seed ({len(est['methods'])} methods + teacher row):")
    for k, v in est["parts_s"].items():
        if isinstance(v, dict):
            lines += [f"  {k} ({n}){'':<{max(0, 22 - len(n))}} {s:>10.1f} s" for n, s in v.items()]
        else:
            lines.append(f"  {k:<40} {v:>10.1f} s")
    lines.append(f"  {'total':<40} {est['total_s']:>10.1f} s ({est['total_s'] / 60:.1f} min)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="cifar10")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--n-train", type=int, default=None,
                    help="training images per measurement [default: 10240 on CUDA, 64 on CPU]")
    ap.add_argument("--n-eval", type=int, default=None,
                    help="test images per measurement [default: 2000 on CUDA, 32 on CPU]")
    ap.add_argument("--smoke", action="store_true", help="measure the --smoke version")
    ap.add_argument("--methods", default=None, help="comma-separated [default: all registered]")
    ap.add_argument("--compile", action="store_true", help="torch.compile for training (CUDA)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads, as `kdbench run --threads` [default: 1]")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    a = ap.parse_args(argv)
    device = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: CUDA is not available on this machine", file=sys.stderr)
        return 2
    if a.compile and device != "cuda":
        print("error: --compile is for CUDA runs", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    cuda = device == "cuda"
    r = measure(a.protocol, device, a.n_train or (10240 if cuda else 64),
                a.n_eval or (2000 if cuda else 32), a.smoke,
                a.methods.split(",") if a.methods else None, a.compile,
                log=lambda m: print(m, file=sys.stderr))
    print(render(r))
    if a.json:
        a.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
