"""The result record's schema: one JSON file per (protocol, method, seed), validated by pydantic.

Field names follow RobustBench's model_info where the meaning matches (`clean_acc`,
`corruptions_acc`, `eps` as a string). Accuracies are percentages. Where records live and how
they are read and written: bench/records/layout.py.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import (Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                      model_validator)

from bench.records.base import DeviceTimings, Pct, Sha, Strict, Timing  # noqa: F401  (re-exported)
from bench.records.deployment import Deployment

from bench.protocols import CIFAR10_C_EXTRAS, DERIVED
from bench.records.evidence import Evidence, evidence_problems

# 2: the job's identity (job_key, harness_version, sources, teacher_key, arch), per-example
# evidence (metrics.evidence), one attack set behind robust_acc (attacks.robust_set), held-out
# corruptions apart. Records of version 1 stay readable; they read as stale, since nothing in
# them names the code.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


class Efficiency(Strict):
    params: PositiveInt
    size_bytes: PositiveInt  # torch.save(state_dict) size
    flops: NonNegativeInt  # per example, forward pass, 2 per multiply-add
    cpu: DeviceTimings
    gpu: DeviceTimings | None
    gpu_absent_reason: str | None

    @model_validator(mode="after")
    def _gpu_or_reason(self):
        if (self.gpu is None) == (self.gpu_absent_reason is None):
            raise ValueError("give GPU timings or the reason they are absent, not both or neither")
        return self


class FGSMSettings(Strict):
    library: str
    steps: Literal[1]
    step_size: PositiveFloat


class PGDSettings(Strict):
    library: str
    steps: PositiveInt
    step_size: PositiveFloat
    random_start: bool
    restarts: PositiveInt


class AutoAttackSettings(Strict):
    library: str
    version: str
    seed: int
    examples: PositiveInt | None = None  # the first n test examples (None: records before it)


class StrongAttackSettings(Strict):
    """One of the stronger attacks behind robust_acc (bench.protocols.StrongAttack)."""

    library: str
    attack: str
    kind: str
    iters: PositiveInt
    restarts: PositiveInt
    targets: NonNegativeInt
    step_size: PositiveFloat | None = None
    until_dry: NonNegativeFloat = 0.0


class RobustSet(Strict):
    """What robust_acc is the per-example worst case over: these attacks, on the first
    `examples` test examples, each of them."""

    attacks: list[str]
    examples: PositiveInt


class AttackSettings(Strict):
    norm: Literal["Linf"]
    eps: str
    fgsm: FGSMSettings
    pgd: PGDSettings
    strong: list[StrongAttackSettings] = []
    autoattack: AutoAttackSettings | None = None  # run only under `kdbench run --full`
    robust_set: RobustSet | None = None  # None: records from before one attack set


class EpsPoint(Strict):
    eps: str  # as people write it: "0.1", "8/255"
    acc: Pct  # PGD accuracy at this radius


class SanityCheck(Strict):
    """One gradient-masking check (Carlini et al. 2019; Athalye et al. 2018)."""

    name: str
    passed: bool
    detail: str  # the numbers compared, in words


class Metrics(Strict):
    """Optional fields are None when not measured (e.g. AutoAttack without --full), never 0."""

    clean_acc: Pct
    fgsm_acc: Pct
    pgd_acc: Pct
    autoattack_acc: Pct | None = None
    robust_acc: Pct  # per-example worst case over clean and every attack run
    eps_curve: list[EpsPoint] | None = None
    corruptions_acc: Pct  # mean over the benchmark's corruptions x severities
    corruptions: dict[str, list[Pct]]  # accuracy per severity, severity 1 first
    extra_corruptions_acc: Pct | None = None  # mean over the held-out corruptions (CIFAR-10-C's 4)
    attacks: AttackSettings
    sanity_checks: list[SanityCheck] | None = None
    unreliable: bool | None = None  # True when any sanity check failed; None: not checked
    unreliable_reasons: list[str] = []
    efficiency: Efficiency
    # Per-example correctness (schema 2 on; absent from older records, which are shown without
    # confidence intervals or rank ranges: nothing in them can be checked per example).
    evidence: Evidence | None = None
    deployment: Deployment | None = None  # absent in records made before it existed

    @model_validator(mode="after")
    def _consistent(self):
        # robust_acc covers AutoAttack's examples when it ran (maybe fewer than the test set),
        # else the whole test set, as the other accuracies do
        worst = (self.autoattack_acc if self.autoattack_acc is not None
                 else min(self.clean_acc, self.fgsm_acc, self.pgd_acc))
        if self.robust_acc > worst + 1e-6:
            raise ValueError(f"robust_acc {self.robust_acc} exceeds the lowest attack accuracy "
                             f"{worst}: it is a per-example worst case")
        if (self.autoattack_acc is None) != (self.attacks.autoattack is None):
            raise ValueError("autoattack_acc and the AutoAttack settings go together")
        if self.sanity_checks is not None:
            failed = [c.name for c in self.sanity_checks if not c.passed]
            if self.unreliable != bool(failed):
                raise ValueError(f"unreliable={self.unreliable} contradicts the sanity checks "
                                 f"(failed: {failed or 'none'})")
        held_out = CIFAR10_C_EXTRAS if self.extra_corruptions_acc is not None else ()
        values = [a for name, accs in self.corruptions.items() if name not in held_out
                  for a in accs]
        if values and abs(sum(values) / len(values) - self.corruptions_acc) > 1e-3:
            raise ValueError(f"corruptions_acc {self.corruptions_acc} is not the mean of the "
                             f"benchmark corruptions' accuracies ({sum(values) / len(values):.4f})")
        if self.evidence is not None:
            problems = evidence_problems(self, self.evidence)
            if problems:
                raise ValueError("; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)"
                                                            if len(problems) > 3 else ""))
        return self


class Training(Strict):
    epochs: PositiveInt
    steps: PositiveInt
    final_epoch_loss: float
    wall_s: NonNegativeFloat | None  # None: trained by an earlier, interrupted run
    teacher_query_images: NonNegativeInt = 0  # teacher forward passes a method asked for

    @model_validator(mode="after")
    def _finite(self):
        if not math.isfinite(self.final_epoch_loss):
            raise ValueError("final_epoch_loss is not finite")
        return self


class ZooTeacherRef(Strict):
    """The teacher, when it came from RobustBench's model zoo (`kdbench run --teacher
    robustbench:NAME`): its identity (bench/protocols.py: ZooTeacher, part of the protocol hash)
    and its clean accuracy checked against the zoo's published one."""

    zoo: Literal["robustbench"]
    name: str
    dataset: str
    threat_model: str
    sha256: Sha  # of the checkpoint file
    published_clean_acc: Pct | None = None  # RobustBench's model_info; None: none known
    # Measured on the first `checked_n` images of the official test set; None: not checked
    # (no published number, or not the official data).
    checked_clean_acc: Pct | None = None
    checked_n: PositiveInt | None = None


class Provenance(Strict):
    kdbench: str
    python: str
    torch: str
    torchvision: str
    torchattacks: str
    numpy: str
    onnx: str | None = None  # the deployment's libraries; absent in older records
    onnxscript: str | None = None
    onnxruntime: str | None = None
    platform: str
    device: str  # where training and evaluation ran: "cpu", "cuda"
    cpu: str
    gpu: str | None
    threads: PositiveInt  # torch intra-op threads during training
    data_fingerprint: str  # the exact data: records of one protocol must share it
    # Corruptions read from dataset files (CIFAR-10-C); every other one was generated by
    # attacks/corruptions. Records made before this field existed generated all of them.
    corruptions_from_files: list[str] = []
    git_commit: str | None
    started_at: datetime
    finished_at: datetime


class CheckpointRef(Strict):
    """The evaluated weights, next to the record: <results-dir>/<protocol>/<method>/seed-<n>.pt"""

    file: str  # relative to the results directory
    sha256: Sha
    bytes: PositiveInt


class Verification(Strict):
    """Written by `kdbench verify`: the checkpoint re-evaluated and compared with the record."""

    ok: bool
    clean_acc: Pct  # as re-evaluated
    pgd_acc: Pct
    tolerance: NonNegativeFloat  # percentage points
    verified_at: datetime
    kdbench: str
    device: str


class Record(Strict):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    protocol: str
    protocol_hash: Sha
    smoke: bool
    method: str
    family: str
    hparams: dict[str, Any]
    method_source: str  # path of the method's file, relative to the repository
    method_source_sha256: Sha
    seed: NonNegativeInt
    # The job's identity (bench/run/jobs.py: JobSpec): its key, the harness version, the sha256
    # of every file of the job's code (the method file, every project module it imports, the
    # architecture), and the teacher it learns from and is evaluated against. Absent in schema 1.
    job_key: Sha | None = None
    harness_version: PositiveInt | None = None
    arch: str | None = None
    sources: dict[str, Sha] = {}
    teacher_key: Sha | None = None
    metrics: Metrics
    training: Training | None  # None: the teacher row of a zoo teacher (nothing trained here)
    eval_wall_s: NonNegativeFloat
    provenance: Provenance
    checkpoint: CheckpointRef | None = None
    verification: Verification | None = None
    teacher_source: ZooTeacherRef | None = None  # None: the protocol's teacher was trained

    @model_validator(mode="after")
    def _identity(self):
        if self.training is None and (self.method != "teacher" or self.teacher_source is None):
            raise ValueError("only the teacher row of a zoo teacher has no training")
        if (DERIVED in self.protocol) != (self.teacher_source is not None):
            raise ValueError(f"protocol {self.protocol!r} and teacher_source disagree: a protocol "
                             f"with a zoo teacher is named <protocol>{DERIVED}<zoo>-<model> and "
                             "its records name the teacher")
        if self.schema_version >= 2 and (self.job_key is None or self.harness_version is None
                                         or not self.sources or self.arch is None):
            raise ValueError("a schema-2 record names its job: job_key, harness_version, arch "
                             "and sources")
        return self
