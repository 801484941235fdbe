"""The model as it ships: ONNX export, int8 quantisation and ONNX Runtime sessions.

- Export: `torch.onnx.export(..., dynamo=True)`, the exporter torch recommends (torch.export,
  then onnxscript's translation), with a dynamic batch axis; input `x` in [0, 1], output `logits`.
- `GraphCache`: an export costs seconds (tracing and translation), nearly all of a student's
  deployment cost, and every student of a run has the same architecture. So a process exports
  each architecture once (`optimize=False`: initialisers keep their state-dict names) and gives a
  model whose modules are exactly the architecture's its own weights with
  `ONNXProgram.apply_weights` (the exporter's API for it), then the exporter's own optimisation
  pass: the same file a direct export writes (tests/test_deployment.py compares them). A model
  whose modules differ in any way (a class, a setting, a hook) is exported on its own.
- int8: ONNX Runtime's post-training static quantisation (`quant_pre_process`, which folds batch
  norm into the convolutions, then `quantize_static`: QDQ, per-channel weights, MinMax ranges
  over the calibration images).
- Sessions: the CPU execution provider with a fixed number of intra-op threads.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quant_pre_process, quantize_static)
from onnxscript import ir
from torch import nn

from bench.errors import KdbenchError
from bench.protocols import DeploySuite

EXPORTER = f"torch.onnx.export(dynamo=True), torch {torch.__version__}"
INPUT, OUTPUT = "x", "logits"
QUANTIZER = "onnxruntime.quantization.quantize_static"


class DeployError(KdbenchError):
    """The model cannot be exported to ONNX, quantised, or run by ONNX Runtime."""


def summary(e: BaseException) -> str:
    """One line out of an exporter's error (which spans a page: the exception summary is what
    names the operator), without terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    causes = [s.strip() for s in text.partition("## Exception summary")[2].splitlines()
              if s.strip().startswith("<class")]
    if causes:
        line = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", causes[0])
    else:
        first = next((s.strip() for s in text.splitlines() if s.strip()), "")
        line = f"{type(e).__name__}: {first}" if first else type(e).__name__
    step = re.search(r"step (\d/\d)", text)
    line = line if len(line) <= 400 else line[:400] + " ..."
    return line + (f" (exporter step {step.group(1)})" if step else "")


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """The exporter and the quantiser print progress and warnings: a job's log stays readable."""
    out = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("", "onnxruntime", "onnxscript", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield out
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_program(model: nn.Module, input_shape: tuple[int, ...],
                   optimize: bool = True) -> torch.onnx.ONNXProgram:
    """`model` (on the CPU, eval mode) as an ONNX program with a dynamic batch axis; a clear
    DeployError when the exporter cannot express it."""
    example = torch.rand(2, *input_shape)  # batch 2: torch.export specialises sizes 0 and 1
    try:
        with quiet(), torch.no_grad():
            return torch.onnx.export(model, (example,), dynamo=True,
                                     dynamic_shapes=({0: torch.export.Dim("batch")},),
                                     input_names=[INPUT], output_names=[OUTPUT],
                                     optimize=optimize, verbose=False)
    except Exception as e:  # the exporter raises many kinds; each is this model's problem
        raise DeployError(f"ONNX export failed: {summary(e)}") from e


def to_bytes(program: torch.onnx.ONNXProgram) -> bytes:
    return program.model_proto.SerializeToString()


def signature(model: nn.Module) -> tuple | None:
    """What makes two models the same function up to their weights: every module's class and
    settings, every weight's name, shape and type. None when a forward hook or a forward set on
    an instance could change what a module computes: such a model is exported on its own."""
    m = nn.modules.module
    if getattr(m, "_global_forward_hooks", None) or getattr(m, "_global_forward_pre_hooks", None):
        return None
    modules = []
    for name, mod in model.named_modules():
        if mod._forward_hooks or mod._forward_pre_hooks or "forward" in vars(mod):
            return None
        settings = tuple(sorted((k, repr(v)) for k, v in vars(mod).items()
                                if not k.startswith("_") and k != "training"))
        modules.append((name, type(mod), settings))
    weights = tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items())
    return tuple(modules), weights


class GraphCache:
    """Each architecture's exported graph, made once per process (see the module docstring)."""

    def __init__(self) -> None:
        self._graphs: dict[str, tuple[tuple, bytes]] = {}

    def onnx_bytes(self, model: nn.Module, key: str, fresh: Callable[[], nn.Module],
                   input_shape: tuple[int, ...], direct: bool = False) -> tuple[bytes, str]:
        """(the fp32 ONNX file, "architecture" or "exported") of `model`. `key` names its
        architecture and `fresh` builds one; `direct` always exports the model itself."""
        cpu = copy.deepcopy(model).cpu().eval()
        sig = None if direct else signature(cpu)
        if sig is not None and key not in self._graphs:
            ref = fresh().cpu().eval()
            if signature(ref) == sig:
                self._graphs[key] = (sig, to_bytes(export_program(ref, input_shape, False)))
        entry = self._graphs.get(key)
        if sig is None or entry is None or entry[0] != sig:
            return to_bytes(export_program(cpu, input_shape)), "exported"
        program = torch.onnx.ONNXProgram(ir.serde.deserialize_model(onnx.load_from_string(
            entry[1])), None)
        names = program.model.graph.initializers
        with quiet():
            program.apply_weights({k: v for k, v in cpu.state_dict().items() if k in names})
            program.optimize()
        return to_bytes(program), "architecture"


GRAPHS = GraphCache()  # one per process: workers keep theirs for every job they run


def session(model: bytes, threads: int, provider: str = "CPUExecutionProvider"
            ) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(model, so, providers=[provider])
    except Exception as e:
        raise DeployError(f"ONNX Runtime cannot load the model: {summary(e)}") from e


class OrtModel(nn.Module):
    """An ONNX Runtime session as a torch module whose forward has no gradient: `predict` and
    query-only attacks (torchattacks.Square) run it like any model. Inputs may be on any
    device; the session runs on the CPU and the logits come back on the input's device."""

    def __init__(self, sess: ort.InferenceSession):
        super().__init__()
        self.session = sess
        self.input_name = sess.get_inputs()[0].name
        # torchattacks reads the model's device from its first parameter.
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.run(x.detach().to("cpu", torch.float32).contiguous().numpy())
        return torch.from_numpy(out).to(x.device)


class _Calibration(CalibrationDataReader):
    def __init__(self, x: torch.Tensor, batch: int = 50):
        self._batches = iter([{INPUT: x[i:i + batch].cpu().contiguous().numpy()}
                              for i in range(0, len(x), batch)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize(fp32: bytes, calibration: torch.Tensor, d: DeploySuite) -> bytes:
    """The int8 model: QDQ, per-channel weights, MinMax ranges over `calibration`."""
    try:
        with tempfile.TemporaryDirectory(prefix="kdbench-int8-") as tmp, quiet():
            src, pre, dst = (Path(tmp) / f for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
            src.write_bytes(fp32)
            quant_pre_process(str(src), str(pre))
            quantize_static(str(pre), str(dst), _Calibration(calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType[d.activation_type],
                            weight_type=QuantType[d.weight_type], reduce_range=d.reduce_range,
                            # Not CalibMaxIntermediateOutputs: onnxruntime 1.32 drops the
                            # outputs it should merge. All batches' activations are held at once.
                            calibrate_method=CalibrationMethod.MinMax)
            return dst.read_bytes()
    except Exception as e:
        raise DeployError(f"int8 quantisation failed: {summary(e)}") from e


def int8_settings(d: DeploySuite, seed: int) -> dict:
    """The `int8` part of the record's deployment section."""
    return {"library": QUANTIZER, "format": "QDQ", "per_channel": True,
            "activation_type": d.activation_type, "weight_type": d.weight_type,
            "reduce_range": d.reduce_range, "calibration": "MinMax",
            "calibration_n": d.calibration_n, "calibration_seed": seed}


def calibration_images(x_train: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """A fixed, seeded sample of `n` training images (the same for every model of a run)."""
    idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:n]
    return x_train[idx.sort().values.to(x_train.device)].cpu()
