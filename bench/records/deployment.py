"""The record's `metrics.deployment` section: the model as it ships, exported to ONNX, quantised
to int8 and run by ONNX Runtime on the CPU (made by bench/eval/deployment.py). Optional: records
made before it existed, or under a protocol whose `deploy.enabled` is off, do not carry it."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from bench.records.base import DeviceTimings, Pct, Strict


class DeployAcc(Strict):
    """One accuracy of the fp32 PyTorch model and of its int8 ONNX Runtime copy, same examples."""

    n: PositiveInt  # examples (corruptions: images x corruptions x severities)
    fp32: Pct
    int8: Pct


class DeployTimings(Strict):
    """Latency of an architecture (weights do not change it): measured once per run, alone on
    the machine, like `efficiency`; `eager` is `efficiency.cpu`."""

    eager: DeviceTimings
    onnx_fp32: DeviceTimings  # ONNX Runtime, CPU execution provider
    onnx_int8: DeviceTimings
    onnx_fp32_cuda: DeviceTimings | None
    cuda_absent_reason: str | None

    @model_validator(mode="after")
    def _cuda_or_reason(self):
        if (self.onnx_fp32_cuda is None) == (self.cuda_absent_reason is None):
            raise ValueError("give CUDA timings or the reason they are absent, not both or neither")
        return self


class Int8Settings(Strict):
    library: str  # onnxruntime.quantization.quantize_static, static post-training quantisation
    format: Literal["QDQ"]
    per_channel: bool
    activation_type: str
    weight_type: str
    reduce_range: bool
    calibration: Literal["MinMax"]
    calibration_n: PositiveInt  # training images, sampled with calibration_seed
    calibration_seed: int


class Deployment(Strict):
    """The model as it ships (bench/eval/deployment.py): ONNX fp32, then int8, run by ONNX
    Runtime on the CPU. `error` says what could not be made or measured (an op ONNX cannot
    express, logits beyond the tolerance); what was measured before it stays."""

    error: str | None = None
    exporter: str  # torch.onnx.export(dynamo=True) and the torch version
    # "exported": this model was exported; "architecture": its architecture's exported graph with
    # this model's weights (ONNXProgram.apply_weights), for a model whose modules are exactly it.
    graph: Literal["exported", "architecture"] | None = None
    logit_max_abs_diff: NonNegativeFloat | None = None  # ONNX fp32 vs PyTorch, CPU
    logit_scale: NonNegativeFloat | None = None  # largest |PyTorch logit| on those examples
    logit_tolerance: PositiveFloat  # in units of max(1, logit_scale)
    fp32_bytes: PositiveInt | None = None  # .onnx file sizes
    int8_bytes: PositiveInt | None = None
    int8: Int8Settings | None = None
    clean: DeployAcc | None = None
    transfer: DeployAcc | None = None  # the fp32 model's own PGD examples (fp32: its PGD acc)
    square: DeployAcc | None = None  # black-box Square against each model, class-balanced subset
    square_queries: PositiveInt | None = None
    corruptions: DeployAcc | None = None  # mean over corruptions x severities, balanced subset
    corruptions_int8: dict[str, list[Pct]] = {}  # per corruption, severity 1 first
    robust: DeployAcc | None = None  # per-example worst case over clean, transfer and Square
    latency: DeployTimings | None = None
    wall_s: NonNegativeFloat  # what this section added to the job's evaluation

    @model_validator(mode="after")
    def _consistent(self):
        diff = self.logit_max_abs_diff
        limit = self.logit_tolerance * max(1.0, self.logit_scale or 0.0)
        if self.error is None:
            if diff is not None and diff > limit:
                raise ValueError(f"logits differ by {diff} > {limit}, yet no error")
            if None in (diff, self.fp32_bytes, self.int8_bytes, self.int8, self.clean,
                        self.corruptions, self.robust):
                raise ValueError("a deployment without an error has its sizes and accuracies")
        if self.robust is not None:
            for kind in ("fp32", "int8"):
                bound = min(getattr(a, kind) for a in (self.clean, self.transfer) if a is not None)
                if getattr(self.robust, kind) > bound + 1e-6:
                    raise ValueError(f"robust {kind} accuracy exceeds its clean or transfer "
                                     "accuracy: it is a per-example worst case")
        values = [a for accs in self.corruptions_int8.values() for a in accs]
        if values and self.corruptions is not None and \
                abs(sum(values) / len(values) - self.corruptions.int8) > 1e-3:
            raise ValueError("corruptions.int8 is not the mean of corruptions_int8")
        return self
