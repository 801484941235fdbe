"""Result records: one JSON file per (protocol, method, seed), schema-versioned and validated.

Layout: `<results-dir>/<protocol>/<method>/seed-<n>.json`. Field names follow RobustBench's
model_info where the meaning matches (`clean_acc`, `corruptions_acc`, `eps` as a string).
Accuracies are percentages. Files are written atomically: a reader never sees half a record.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt,
                      PositiveFloat, PositiveInt, ValidationError, model_validator)

from bench.atomic import atomic_write
from bench.errors import RecordError

SCHEMA_VERSION = 1
Pct = Annotated[float, Field(ge=0.0, le=100.0)]
Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(Strict):
    batch: PositiveInt
    median_ms: PositiveFloat  # torch.utils.benchmark, blocks of calls
    p50_ms: PositiveFloat  # per-call percentiles
    p90_ms: PositiveFloat
    throughput_ips: PositiveFloat  # examples per second at this batch size
    samples: PositiveInt
    iqr_over_median: NonNegativeFloat


class DeviceTimings(Strict):
    device_name: str
    threads: PositiveInt
    timings: list[Timing] = Field(min_length=1)


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


class AttackSettings(Strict):
    norm: Literal["Linf"]
    eps: str
    fgsm: FGSMSettings
    pgd: PGDSettings
    autoattack: AutoAttackSettings | None = None  # run only under `kdbench run --full`


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
    corruptions_acc: Pct  # mean over corruptions x severities
    corruptions: dict[str, list[Pct]]  # accuracy per severity, severity 1 first
    attacks: AttackSettings
    sanity_checks: list[SanityCheck] | None = None
    unreliable: bool | None = None  # True when any sanity check failed; None: not checked
    unreliable_reasons: list[str] = []
    efficiency: Efficiency

    @model_validator(mode="after")
    def _consistent(self):
        accs = [self.clean_acc, self.fgsm_acc, self.pgd_acc]
        worst = min(accs + ([self.autoattack_acc] if self.autoattack_acc is not None else []))
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
        values = [a for accs in self.corruptions.values() for a in accs]
        if values and abs(sum(values) / len(values) - self.corruptions_acc) > 1e-3:
            raise ValueError(f"corruptions_acc {self.corruptions_acc} is not the mean of the "
                             f"per-corruption accuracies ({sum(values) / len(values):.4f})")
        return self


class Training(Strict):
    epochs: PositiveInt
    steps: PositiveInt
    final_epoch_loss: float
    wall_s: NonNegativeFloat | None  # None: trained by an earlier, interrupted run

    @model_validator(mode="after")
    def _finite(self):
        if not math.isfinite(self.final_epoch_loss):
            raise ValueError("final_epoch_loss is not finite")
        return self


class Provenance(Strict):
    kdbench: str
    python: str
    torch: str
    torchvision: str
    torchattacks: str
    numpy: str
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
    schema_version: Literal[1] = SCHEMA_VERSION
    protocol: str
    protocol_hash: Sha
    smoke: bool
    method: str
    family: str
    hparams: dict[str, Any]
    method_source: str  # path of the method's file, relative to the repository
    method_source_sha256: Sha
    seed: NonNegativeInt
    metrics: Metrics
    training: Training
    eval_wall_s: NonNegativeFloat
    provenance: Provenance
    checkpoint: CheckpointRef | None = None
    verification: Verification | None = None


def record_path(results_dir: Path, protocol: str, method: str, seed: int) -> Path:
    return Path(results_dir) / protocol / method / f"seed-{seed}.json"


def checkpoint_path(results_dir: Path, protocol: str, method: str, seed: int) -> Path:
    return Path(results_dir) / protocol / method / f"seed-{seed}.pt"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one."""
    atomic_write(path, text.encode(), RecordError,
                 "choose another --results-dir or fix its permissions")


def write_record(record: Record, results_dir: Path) -> Path:
    path = record_path(results_dir, record.protocol, record.method, record.seed)
    atomic_write_text(path, record.model_dump_json(indent=2) + "\n")
    return path


def read_record(path: Path) -> Record:
    """Parse and schema-check one record; RecordError names the file and the first problems."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise RecordError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}") from None
    if isinstance(data, dict) and data.get("schema_version") not in (None, SCHEMA_VERSION):
        raise RecordError(f"{path}: schema_version {data.get('schema_version')!r} is not "
                          f"supported (this kdbench reads version {SCHEMA_VERSION})")
    try:
        return Record.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(record)'}: {err['msg']}"
                             for err in e.errors()[:5])
        more = f" (and {e.error_count() - 5} more)" if e.error_count() > 5 else ""
        raise RecordError(f"{path}: {problems}{more}") from None


def _find(paths: list[Path], pattern: str) -> list[Path]:
    found: dict[Path, None] = {}  # ordered, and each file once however it was named
    for p in map(Path, paths):
        if p.is_dir():
            found.update(dict.fromkeys(sorted(p.rglob(pattern))))
        elif p.exists():
            if p.match(pattern):
                found[p] = None
        else:
            raise RecordError(f"{p}: no such file or directory")
    unique: dict[Path, Path] = {}
    for f in found:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def find_records(paths: list[Path]) -> list[Path]:
    """Record files (seed-*.json) under the given files and directories, sorted, each once."""
    return _find(paths, "seed-*.json")


def find_entries(paths: list[Path]) -> list[Path]:
    """Leaderboard entries (entry.json) under the given files and directories."""
    return _find(paths, "entry.json")
