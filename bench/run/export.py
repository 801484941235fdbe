"""`kdbench export`: the deployable model of a record, written from its checkpoint.

The checkpoint must be the one the record evaluated (its sha256 as recorded; read with
weights_only=True). The model is exported as the benchmark exports it (bench/eval/onnx_export.py),
so the file is the one the record measured: fp32 ONNX with a dynamic batch axis, its logits
checked against PyTorch's, and with `int8` quantised as the benchmark quantises it (the
protocol's calibration images and settings).
What is written is measured: its accuracy on the protocol's test examples, its size, its latency
next to the PyTorch model's (the protocol's batch sizes, threads and timing rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from attacks.adversarial import predict
from bench.checkpoints import load_weights
from bench.data.registry import load_split
from bench.errors import RecordError, UsageError
from bench.eval.deployment import logits_match, max_abs_diff, ort_timings
from bench.eval.efficiency import latency
from bench.eval.onnx_export import (DeployError, GraphCache, OrtModel, calibration_images,
                                    quantize, session)
from bench.eval.suite import pct
from bench.files import atomic_write, file_sha256
from bench.models.registry import build_model
from bench.protocols import get_protocol
from bench.records.layout import read_record, record_path
from bench.run.spec import TEACHER


@dataclass(frozen=True)
class Exported:
    path: Path
    int8: bool
    size_bytes: int
    clean_acc: float  # of the written model, on the first n test examples
    n: int
    recorded_clean_acc: float  # the record's: the PyTorch model on every test example
    logit_max_abs_diff: float  # fp32 ONNX against PyTorch
    timings: dict[str, list[dict]]  # "PyTorch eager" / "ONNX Runtime ..." -> per batch size


def default_output(method: str, seed: int, int8: bool) -> Path:
    return Path(f"{method}-seed{seed}{'-int8' if int8 else ''}.onnx")


def _load(method: str, seed: int, protocol: str, results_dir: Path):
    p = get_protocol(protocol)
    path = record_path(results_dir, p.name, method, seed)
    if not path.exists():
        raise UsageError(f"{path}: no record of {method!r} seed {seed} under {p.name}; make it "
                         f"with: kdbench run --protocol {p.name} --methods {method} --seeds "
                         f"{seed} --results-dir {results_dir}")
    rec = read_record(path)
    if rec.smoke:
        p = p.for_smoke()
    if rec.protocol_hash != p.hash:
        raise RecordError(f"{path} was made under another definition of {p.name} "
                          f"({rec.protocol_hash}, registered: {p.hash}); rerun it before export")
    if rec.checkpoint is None:
        raise RecordError(f"{path} names no checkpoint (an older record); rerun it")
    ckpt = results_dir / rec.checkpoint.file
    if not ckpt.exists():
        raise RecordError(f"{ckpt}: the checkpoint {path} names does not exist; rerun the job")
    if file_sha256(ckpt) != rec.checkpoint.sha256:
        raise RecordError(f"{ckpt} does not match the sha256 recorded in {path}: it is not the "
                          "model the record evaluated; rerun the job")
    arch = rec.arch or (p.teacher_arch if method == TEACHER else p.student_arch)
    model = build_model(arch, p)
    try:
        model.load_state_dict(load_weights(ckpt)[0])
    except (KeyError, RuntimeError) as e:
        raise RecordError(f"{ckpt} does not hold {arch} weights: {e}") from None
    return p, rec, model.eval(), arch


def export_record(method: str, seed: int, protocol: str, results_dir: Path, int8: bool,
                  output: Path | None = None, data_dir: Path | None = None) -> Exported:
    """Write the deployable model of record (protocol, method, seed) and measure it."""
    p, rec, model, arch = _load(method, seed, protocol, Path(results_dir))
    e, d = p.eval, p.deploy
    split = load_split(p, data_dir)
    n = len(split.x_test) if d.n is None else min(d.n, len(split.x_test))
    x, y = split.x_test[:n], split.y_test[:n]
    fp32, _ = GraphCache().onnx_bytes(model, arch, lambda: build_model(arch, p), p.input_shape)
    diff, scale = max_abs_diff(OrtModel(session(fp32, e.cpu_threads)), model, x,
                               e.eval_batch_size)
    if not logits_match(diff, scale, d.logit_tolerance):
        raise DeployError(f"ONNX Runtime's logits differ from PyTorch's by up to {diff:.3g} "
                          f"(tolerance {d.logit_tolerance:g} x max(1, {scale:.3g})): the exported "
                          "graph does not compute the model; nothing written")
    data = (quantize(fp32, calibration_images(split.x_train, d.calibration_n, e.seed), d)
            if int8 else fp32)
    deployed = OrtModel(session(data, e.cpu_threads))
    acc = pct(predict(deployed, x, e.eval_batch_size) == y)
    kind = "int8" if int8 else "fp32"
    with torch.no_grad():
        eager = latency(model, p.input_shape, e.latency_batch_sizes, "cpu", e.cpu_threads,
                        e.latency_min_run_time)
    timings = {"PyTorch eager (fp32)": eager,
               f"ONNX Runtime ({kind})": ort_timings(data, p, "CPUExecutionProvider")}
    out = Path(output or default_output(method, seed, int8))
    atomic_write(out, data, hint="choose another -o path")
    return Exported(out, int8, len(data), acc, n, rec.metrics.clean_acc, diff, timings)
