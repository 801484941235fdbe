"""What a job is, and whether a record is still its current result.

A job is (protocol, method, seed). `job_spec()` builds its `JobSpec` — the method, its family,
the architecture it trains, the final epoch, the hyper-parameters, the sha256 of every file of its
code (the method's file, every project module it imports, the architecture's code), the teacher it
learns from and is evaluated against, and the harness version. It is the only place that knows
the teacher row is special. `staleness()` compares a record with a spec and says, in words, every
reason the record is not the job's current result; `kdbench run` (skip or rerun), `submit`,
`validate` and `verify` all ask it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import methods
from bench.errors import UsageError
from bench.files import file_sha256
from bench.harness import HARNESS_VERSION
from bench.models.registry import arch_source_files
from bench.protocols import Protocol
from bench.provenance import code_dependencies, relative_to_repo, source_digests
from bench.records.schema import Record
from bench.train.teacher import teacher_key, teacher_row

TEACHER = "teacher"  # the reference row of the protocol's teacher itself


@dataclass(frozen=True)
class JobSpec:
    """Everything a job's result depends on, apart from the run's device and thread count."""

    protocol: str
    protocol_hash: str
    smoke: bool
    method: str
    family: str
    arch: str
    seed: int
    final_epochs: int | None  # None: the teacher row of a teacher not trained here (a zoo one)
    hparams: dict
    method_source: str  # repo-relative path of the file that defines the method (or the arch)
    sources: dict[str, str]  # every file of the job's code -> sha256
    teacher_key: str  # the protocol's teacher: KD methods learn from it, every job is checked
    # against it (the transfer sanity check)
    harness_version: int

    @property
    def key(self) -> str:
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def method_spec(name: str):
    specs, errors = methods.discover()
    if name not in specs:
        broken = {e.module: e for e in errors}
        if name in broken:
            raise UsageError(f"method {name!r} could not be loaded from {broken[name].source}: "
                             f"{broken[name].problem}")
        raise UsageError(f"unknown method {name!r}; available: {', '.join(sorted(specs))}")
    return specs[name]


def job_seeds(protocol: Protocol, method: str) -> list[int]:
    """The seeds a method runs under the protocol: the teacher row once, at the teacher's seed."""
    return [protocol.teacher_seed] if method == TEACHER else list(protocol.seeds)


def job_spec(protocol: Protocol, method: str, seed: int) -> JobSpec:
    """The spec of job (protocol, method, seed); `method` may be TEACHER, the teacher row."""
    if method == TEACHER:
        row = teacher_row(protocol)
        arch, sources, epochs, hparams = row.arch, row.sources, row.epochs, row.hparams
        family, defined_in = "reference", row.defined_in
    else:
        cls, arch = method_spec(method).cls, protocol.student_arch
        try:
            files = code_dependencies(cls.__module__)
        except ValueError:  # a class without an importable module (built at run time)
            files = [cls.source_file()]
        sources = source_digests([*files, *arch_source_files(arch)])
        family, epochs = cls.family, protocol.student_recipe.epochs
        hparams = cls.Hparams().model_dump()
        defined_in = cls.source_file()
    return JobSpec(protocol=protocol.name, protocol_hash=protocol.hash, smoke=protocol.smoke,
                   method=method, family=family, arch=arch, seed=seed, final_epochs=epochs,
                   hparams=hparams, method_source=relative_to_repo(defined_in), sources=sources,
                   teacher_key=teacher_key(protocol), harness_version=HARNESS_VERSION)


def _source_changes(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    out = []
    for path in sorted(set(recorded) | set(current)):
        was, now = recorded.get(path), current.get(path)
        if was is None:
            out.append(f"the job now also depends on {path}")
        elif now is None:
            out.append(f"the job no longer depends on {path}")
        elif was != now:
            out.append(f"{path} changed since the record was made (sha256 {was[:12]} -> "
                       f"{now[:12]})")
    return out


def _incomplete(rec: Record, protocol: Protocol) -> list[str]:
    e = protocol.eval
    out = []
    missing = [k for k in e.corruptions
               if len(rec.metrics.corruptions.get(k, [])) != len(e.severities)]
    if missing:
        out.append(f"lacks corruption results for {', '.join(missing)}")
    if rec.metrics.sanity_checks is None:
        out.append("lacks the gradient-masking sanity checks")
    if e.eps_curve and not rec.metrics.eps_curve:
        out.append("lacks the accuracy-vs-eps curve")
    if protocol.deploy.enabled and rec.metrics.deployment is None:
        out.append("lacks the deployment evaluation (ONNX Runtime, int8)")
    return out


def _checkpoint_problems(rec: Record, results_dir: Path) -> list[str]:
    if rec.checkpoint is None:
        return ["has no checkpoint"]
    ckpt = Path(results_dir) / rec.checkpoint.file
    if not ckpt.exists():
        return [f"names checkpoint {ckpt}, which does not exist"]
    if file_sha256(ckpt) != rec.checkpoint.sha256:
        return [f"checkpoint {ckpt} does not match its recorded sha256"]
    return []


def staleness(rec: Record, spec: JobSpec, protocol: Protocol, *, results_dir: Path | None = None,
              device: str | None = None, threads: int | None = None,
              data_fingerprint: str | None = None, full: bool = False) -> list[str]:
    """Every reason `rec` is not the current result of the job `spec` describes; [] when it is.

    `protocol` is the registered definition the spec was built from (its evaluation suite says
    what a complete record holds). The keyword arguments add what a caller knows: where the
    checkpoint should be, the run's device, thread count and data, and whether AutoAttack
    (`--full`) is wanted.
    """
    if rec.schema_version < 2:
        return [f"was made by an older kdbench (record schema {rec.schema_version}, which names "
                "neither the code nor the teacher it came from)"]
    out = []
    if rec.smoke != spec.smoke:
        out.append("is a --smoke record" if rec.smoke else "is not a --smoke record")
    if rec.protocol_hash != spec.protocol_hash:
        out.append(f"was made under another definition of {spec.protocol} "
                   f"({rec.protocol_hash}, registered: {spec.protocol_hash})")
    if rec.harness_version != spec.harness_version:
        out.append(f"was made by harness version {rec.harness_version} (now "
                   f"{spec.harness_version}: training or evaluation changed since)")
    if rec.teacher_key != spec.teacher_key:
        out.append(f"was made against another teacher ({rec.teacher_key}, now "
                   f"{spec.teacher_key}: its recipe or code changed)")
    out += _source_changes(rec.sources, spec.sources)
    if rec.hparams != spec.hparams:
        out.append(f"has hyper-parameters {rec.hparams}, the method's are now {spec.hparams}")
    if rec.arch != spec.arch:
        out.append(f"trained architecture {rec.arch}, the protocol's is {spec.arch}")
    epochs = None if rec.training is None else rec.training.epochs
    if epochs != spec.final_epochs:
        out.append(f"has {epochs} training epochs, the protocol {spec.final_epochs}")
    if not out and rec.job_key != spec.key:
        out.append(f"has job key {rec.job_key}, the job's is now {spec.key}")
    out += _incomplete(rec, protocol)
    if full and rec.metrics.autoattack_acc is None:
        out.append("lacks AutoAttack (--full)")
    if device is not None and rec.provenance.device != device:
        out.append(f"ran on {rec.provenance.device}, this run on {device}")
    if threads is not None and rec.provenance.threads != threads:
        out.append(f"ran with {rec.provenance.threads} thread(s) per job, this run with {threads}")
    if data_fingerprint is not None and rec.provenance.data_fingerprint != data_fingerprint:
        out.append(f"was evaluated on other data (fingerprint {rec.provenance.data_fingerprint}, "
                   f"now {data_fingerprint})")
    if results_dir is not None:
        out += _checkpoint_problems(rec, results_dir)
    return out
