"""The deployment evaluation: the model as it ships, in each record's `metrics.deployment`.

No benchmark anchor measures this (RobustBench, torchdistill, mdistiller and the ARD/RSLAD code
all stop at fp32 PyTorch), yet a distilled student exists to be exported, quantised and run by
an inference runtime on a CPU. Per model, `Deployment` (an evaluator of bench/eval/suite.py, run
after the others, whose masks and examples it reuses):

1. fp32 ONNX (bench/eval/onnx_export.py) run by ONNX Runtime on the CPU with the protocol's
   thread count; its logits must equal PyTorch's (on the CPU) within `deploy.logit_tolerance` on
   every test example it is evaluated on, or the section records an error.
2. int8: static post-training quantisation, calibrated on a seeded sample of training images.
3. The int8 model against the fp32 one on the same examples: clean; every corruption x severity
   of the protocol (the run's CorruptedTestSet, on a class-balanced subset); the fp32 model's own
   PGD examples (transfer: what an attacker holding the released fp32 weights does; the int8
   graph has no gradient); the black-box Square attack (torchattacks) run directly against each
   model at the protocol's eps and the declared query budget; and the per-example worst case
   over clean, transfer and Square.

Latency depends on the architecture only: `measure_latency` times it once per run, alone on the
machine, by the rules of `efficiency` (bench/eval/efficiency.py), as `efficiency` itself is.
A model the exporter cannot express, or whose ONNX logits differ, gets an `error` in its section;
the job and the run go on.
"""

from __future__ import annotations

import copy
import math
import time

import onnxruntime as ort
import torch
import torchattacks
from torch import nn

from attacks.adversarial import predict, robust_mask
from bench.eval.efficiency import time_batches
from bench.eval.onnx_export import (EXPORTER, GRAPHS, DeployError, GraphCache, OrtModel,
                                    calibration_images, int8_settings, quantize, session)
from bench.eval.context import EvalContext, pct
from bench.eval.corruptions import CorruptedTestSet
from bench.models.registry import build_model
from bench.protocols import Protocol
from bench.provenance import cpu_name


def latency_key(arch: str) -> str:
    """Where a run keeps an architecture's deployment latency, beside its `efficiency`."""
    return f"{arch}/deployment"


def balanced(y: torch.Tensor, n: int, num_classes: int) -> torch.Tensor:
    """Indices of the first n // C examples of each class (one more for the first n % C
    classes), in test order: a class-balanced subset, the same for every model."""
    picks = [torch.nonzero(y == c).flatten()[:n // num_classes + (c < n % num_classes)]
             for c in range(num_classes)]
    return torch.cat(picks).sort().values


def _acc(fp32: torch.Tensor, int8: torch.Tensor) -> dict:
    return {"n": len(int8), "fp32": pct(fp32.cpu()), "int8": pct(int8.cpu())}


def max_abs_diff(onnx_model: OrtModel, ref: nn.Module, x: torch.Tensor, batch: int
                 ) -> tuple[float, float]:
    """(largest |ONNX - PyTorch| logit, largest |PyTorch logit|) over `x` in batches and on one
    example alone (the batch axis is dynamic); NaN counts as infinitely far."""
    worst, scale = 0.0, 0.0
    with torch.no_grad():
        for xb in [x[:1], *x.split(batch)]:
            want = ref(xb)
            d = (onnx_model(xb) - want).abs().max().item()
            worst = max(worst, d if math.isfinite(d) else math.inf)
            scale = max(scale, want.abs().max().item())
    return worst, scale


def logits_match(diff: float, scale: float, tolerance: float) -> bool:
    """`diff` within `tolerance` in units of max(1, scale) (DeploySuite.logit_tolerance)."""
    return diff <= tolerance * max(1.0, scale)


def _square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, queries: int,
            seed: int, batch: int) -> torch.Tensor:
    torch.manual_seed(seed)
    attack = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=queries, seed=seed)
    return robust_mask(model, attack, x, y, batch)


class Deployment:
    """The `deployment` evaluator (see the module docstring). `latency` is the architecture's,
    from `measure_latency`; None leaves it out of the record."""

    name = "deployment"

    def __init__(self, arch: str, x_train: torch.Tensor, latency: dict | None = None,
                 graphs: GraphCache = GRAPHS):
        self.arch, self.x_train, self.latency, self.graphs = arch, x_train, latency, graphs

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        d = ctx.protocol.deploy
        if not d.enabled:
            return {}
        t0 = time.perf_counter()
        out: dict = {"exporter": EXPORTER, "logit_tolerance": d.logit_tolerance,
                     "latency": self.latency}
        try:
            self._evaluate(model, ctx, out)
        except DeployError as e:
            out["error"] = str(e)
            if "int8_bytes" not in out:  # no model was made: the architecture's speed is not its
                out["latency"] = None
        out["wall_s"] = round(time.perf_counter() - t0, 3)
        return {"deployment": out}

    def _fp32(self, model: nn.Module, ctx: EvalContext, x: torch.Tensor, out: dict) -> bytes:
        """The fp32 ONNX file, its logits checked against the model's on the CPU."""
        p, threads = ctx.protocol, ctx.protocol.eval.cpu_threads
        ref = copy.deepcopy(model).cpu().eval()
        fresh = lambda: build_model(self.arch, p)  # noqa: E731
        fp32, graph = self.graphs.onnx_bytes(ref, f"{self.arch}/{p.hash}", fresh, p.input_shape)
        tol = p.deploy.logit_tolerance
        diff, scale = max_abs_diff(OrtModel(session(fp32, threads)), ref, x, ctx.batch_size)
        if not logits_match(diff, scale, tol) and graph == "architecture":
            # The architecture's graph did not reproduce the model: export the model itself.
            fp32, graph = self.graphs.onnx_bytes(ref, "", fresh, p.input_shape, direct=True)
            diff, scale = max_abs_diff(OrtModel(session(fp32, threads)), ref, x, ctx.batch_size)
        out.update(graph=graph, fp32_bytes=len(fp32), logit_max_abs_diff=diff,
                   logit_scale=scale)
        if not logits_match(diff, scale, tol):
            raise DeployError(f"ONNX Runtime's logits differ from PyTorch's by up to {diff:.3g} "
                              f"(tolerance {tol:g} x max(1, largest |logit| {scale:.3g})) on the "
                              "test examples: the exported graph does not compute the model")
        return fp32

    def _evaluate(self, model: nn.Module, ctx: EvalContext, out: dict) -> None:
        p, d, e = ctx.protocol, ctx.protocol.deploy, ctx.protocol.eval
        # the robust set's examples (all of them unless AutoAttack ran on fewer): the fp32
        # masks and the kept PGD examples cover those
        n = ctx.n if d.n is None else min(d.n, ctx.n)
        x, y = ctx.x[:n].cpu(), ctx.y[:n].cpu()
        bs = ctx.batch_size
        fp32 = self._fp32(model, ctx, x, out)
        int8 = quantize(fp32, calibration_images(self.x_train, d.calibration_n, e.seed), d)
        out.update(int8_bytes=len(int8), int8=int8_settings(d, e.seed))
        q = OrtModel(session(int8, e.cpu_threads))

        def fp32_mask(kept: torch.Tensor | None, idx: torch.Tensor, xs: torch.Tensor):
            """The fp32 model's per-example correctness on `idx`: as the suite kept it, or
            computed here when the evaluator that keeps it did not run."""
            if kept is not None:
                return kept.cpu()[idx]
            return predict(model, xs.to(ctx.device), bs).cpu() == y[idx]

        corr_idx = balanced(y, d.corruption_n, p.num_classes)
        sq_idx = balanced(y, d.square_n, p.num_classes)
        steps = 3 + len(e.corruptions) * len(e.severities)
        with ctx.reporter.task("deployment (int8)", total=steps) as bar:
            clean8 = predict(q, x, bs) == y
            clean = fp32_mask(ctx.masks.get("clean"), torch.arange(n), x)
            out["clean"] = _acc(clean, clean8)
            worst8, worst = clean8.clone(), clean.clone()
            adv = ctx.adversarial.get("pgd")
            if adv is not None:
                t8 = predict(q, adv[:n], bs) == y
                out["transfer"] = _acc(ctx.masks["pgd"].cpu()[:n], t8)
                worst8 &= t8
                worst &= ctx.masks["pgd"].cpu()[:n]
            bar.advance()
            corrupted = ctx.corrupted or CorruptedTestSet(ctx.x, e.seed, suite=e.corruption_suite)
            ok8, ok, table = [], [], {}
            for name in e.corruptions:
                table[name] = []
                for s in e.severities:
                    xc = corrupted.get(name, s)[corr_idx.to(ctx.x.device)].cpu()
                    ok8.append(predict(q, xc, bs) == y[corr_idx])
                    ok.append(fp32_mask(ctx.corruption_masks.get((name, s)), corr_idx, xc))
                    table[name].append(pct(ok8[-1]))
                    bar.advance()
            out["corruptions"] = _acc(torch.cat(ok), torch.cat(ok8))
            out["corruptions_int8"] = table
            xs, ys = x[sq_idx], y[sq_idx]
            sq = _square(model, xs.to(ctx.device), ys.to(ctx.device), e.eps, d.square_queries,
                         e.seed, bs).cpu()
            bar.advance()
            sq8 = _square(q, xs, ys, e.eps, d.square_queries, e.seed, bs)
            bar.advance()
        out.update(square=_acc(sq, sq8), square_queries=d.square_queries)
        worst8[sq_idx] &= sq8
        worst[sq_idx] &= sq
        out["robust"] = _acc(worst, worst8)


def ort_timings(model: bytes, protocol: Protocol, provider: str) -> list[dict]:
    e = protocol.eval
    run = OrtModel(session(model, e.cpu_threads, provider)).run
    return time_batches(run, lambda b: torch.rand(b, *protocol.input_shape).numpy(),
                        e.latency_batch_sizes, e.cpu_threads, e.latency_min_run_time)


def measure_latency(model: nn.Module, arch: str, protocol: Protocol, x_train: torch.Tensor,
                    efficiency: dict, graphs: GraphCache = GRAPHS) -> dict:
    """The architecture's `deployment.latency`: ONNX Runtime fp32 and int8 on the CPU (and fp32
    on CUDA where both CUDA and ONNX Runtime's CUDA provider are present), with `eager` the
    PyTorch timings of `efficiency`, measured just before by the same rules."""
    e, d = protocol.eval, protocol.deploy
    fp32, _ = graphs.onnx_bytes(model, f"{arch}/{protocol.hash}",
                                lambda: build_model(arch, protocol), protocol.input_shape)
    int8 = quantize(fp32, calibration_images(x_train, d.calibration_n, e.seed), d)
    cpu = {"device_name": cpu_name(), "threads": e.cpu_threads}
    out = {"eager": efficiency["cpu"],
           "onnx_fp32": {**cpu, "timings": ort_timings(fp32, protocol, "CPUExecutionProvider")},
           "onnx_int8": {**cpu, "timings": ort_timings(int8, protocol, "CPUExecutionProvider")},
           "onnx_fp32_cuda": None, "cuda_absent_reason": None}
    if not torch.cuda.is_available():
        out["cuda_absent_reason"] = "CUDA is not available on the machine that ran the evaluation"
    elif "CUDAExecutionProvider" not in ort.get_available_providers():
        out["cuda_absent_reason"] = ("ONNX Runtime has no CUDA execution provider here (the CPU "
                                     "build is installed; onnxruntime-gpu provides it)")
    else:
        out["onnx_fp32_cuda"] = {"device_name": torch.cuda.get_device_name(),
                                 "threads": e.cpu_threads,
                                 "timings": ort_timings(fp32, protocol, "CUDAExecutionProvider")}
    return out
