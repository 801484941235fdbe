"""What the leaderboard shows per method: the metric catalogue, the aggregation over seeds, and
the ranks (by mean, and significance-aware rank ranges).

A metric a record does not carry (AutoAttack not run, no GPU, ...) is None and is never shown as
0. Optional metrics are aggregated over the seeds that carry them; `MethodRow.counts` says how many.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.records import DeviceTimings, Record
from bench.records.aggregate import Stat, group, with_mce
from bench.records.measures import BY_KEY as MEASURES
from bench.records.significance import RankRange, has_evidence, table_ranges

REFERENCE_FAMILY = "reference"


def _latency_ms(timings: DeviceTimings | None) -> float | None:
    """Median time of one call at the smallest batch size measured (batch 1 in every protocol)."""
    if timings is None:
        return None
    return min(timings.timings, key=lambda t: t.batch).median_ms


def _int8(part: str, drop: bool = False) -> Callable[[Record], float | None]:
    """The int8 accuracy of a deployment measurement (or its drop from fp32, in points)."""
    def read(r: Record) -> float | None:
        d = r.metrics.deployment
        acc = getattr(d, part) if d is not None else None
        if acc is None:
            return None
        return acc.fp32 - acc.int8 if drop else acc.int8
    return read


def _deployed(field: str) -> Callable[[Record], float | None]:
    return lambda r: getattr(r.metrics.deployment, field, None)


def _deployed_ms(kind: str) -> Callable[[Record], float | None]:
    def read(r: Record) -> float | None:
        d = r.metrics.deployment
        return _latency_ms(getattr(d.latency, kind)) if d is not None and d.latency else None
    return read


@dataclass(frozen=True)
class Metric:
    key: str  # column name in frames and CSV
    label: str  # column title in the app
    read: Callable[[Record], float | None] | None  # None: derived across records (mCE)
    higher_is_better: bool
    accuracy: bool  # a percentage of test examples (robustness axis) or a cost
    help: str
    group: str = "main"  # "deployment": shown in the Deployment view, not the main table


METRICS: tuple[Metric, ...] = (
    Metric("clean", "clean %", lambda r: r.metrics.clean_acc, True, True,
           "Accuracy on the protocol's clean test examples"),
    Metric("corruptions", "corruption %", lambda r: r.metrics.corruptions_acc, True, True,
           "Mean accuracy over the benchmark's corruptions x severities"),
    Metric("fgsm", "FGSM %", lambda r: r.metrics.fgsm_acc, True, True,
           "Accuracy under FGSM at the protocol's eps"),
    Metric("pgd", "PGD %", lambda r: r.metrics.pgd_acc, True, True,
           "Accuracy under PGD at the protocol's eps"),
    Metric("autoattack", "AutoAttack %", lambda r: r.metrics.autoattack_acc, True, True,
           "Accuracy under AutoAttack (opt-in; — when not run)"),
    Metric("robust", "robust %", lambda r: r.metrics.robust_acc, True, True,
           "Per-example worst case over clean and every attack run"),
    Metric("auc", MEASURES["auc"].label, MEASURES["auc"].read, True, True, MEASURES["auc"].help),
    Metric("extra_corruptions", "held-out corruption %",
           lambda r: r.metrics.extra_corruptions_acc, True, True,
           "Mean accuracy over the held-out corruptions (CIFAR-10-C's 4 extras), which stay out "
           "of the corruption mean and mCE"),
    Metric("mce", "mCE", None, False, False,
           "Mean corruption error relative to the baseline student of the same seed "
           "(Hendrycks & Dietterich 2019; baseline = 100, lower is better)"),
    Metric("rel_mce", "rel. mCE", None, False, False,
           "Relative mCE: corruption error minus clean error, relative to the baseline's; "
           "corruptions on which the baseline's relative error is below the protocol's floor "
           "(rel_mce_floor, 1 point by default) are left out"),
    Metric("params", "params", lambda r: r.metrics.efficiency.params, False, False,
           "Parameters of the evaluated network"),
    Metric("size", "size", lambda r: r.metrics.efficiency.size_bytes, False, False,
           "Serialized size of the state dict"),
    Metric("flops", "FLOPs", lambda r: r.metrics.efficiency.flops, False, False,
           "FLOPs per example, forward pass (2 per multiply-add)"),
    Metric("cpu_ms", "CPU ms", lambda r: _latency_ms(r.metrics.efficiency.cpu), False, False,
           "Median CPU latency at batch 1, the thread count the protocol fixes"),
    Metric("gpu_ms", "GPU ms", lambda r: _latency_ms(r.metrics.efficiency.gpu), False, False,
           "Median GPU latency at batch 1 (— when no GPU was present)"),
    # The model as it ships: ONNX Runtime on the CPU, int8 (bench/eval/deployment.py).
    Metric("int8_clean", "int8 clean %", _int8("clean"), True, True,
           "int8 model (ONNX Runtime) on the clean test examples", "deployment"),
    Metric("int8_corruptions", "int8 corruption %", _int8("corruptions"), True, True,
           "int8 model, mean over corruptions x severities (class-balanced subset)", "deployment"),
    Metric("int8_transfer", "int8 PGD-transfer %", _int8("transfer"), True, True,
           "int8 model on the fp32 model's own PGD examples", "deployment"),
    Metric("int8_square", "int8 Square %", _int8("square"), True, True,
           "Black-box Square attack run against the int8 model itself", "deployment"),
    Metric("int8_robust", "int8 robust %", _int8("robust"), True, True,
           "int8 model: per-example worst case over clean, PGD transfer and Square",
           "deployment"),
    Metric("drop_clean", "clean drop", _int8("clean", drop=True), False, False,
           "fp32 minus int8 clean accuracy, points (same examples)", "deployment"),
    Metric("drop_corruptions", "corruption drop", _int8("corruptions", drop=True), False, False,
           "fp32 minus int8 corruption accuracy, points (same images)", "deployment"),
    Metric("drop_transfer", "PGD-transfer drop", _int8("transfer", drop=True), False, False,
           "fp32 PGD accuracy minus int8 accuracy on the same PGD examples, points",
           "deployment"),
    Metric("drop_square", "Square drop", _int8("square", drop=True), False, False,
           "fp32 minus int8 accuracy under Square, same examples and queries, points",
           "deployment"),
    Metric("drop_robust", "robust drop", _int8("robust", drop=True), False, False,
           "fp32 minus int8 worst case over clean, PGD (transfer) and Square, points",
           "deployment"),
    Metric("int8_size", "int8 size", _deployed("int8_bytes"), False, False,
           "Size of the int8 .onnx file", "deployment"),
    Metric("onnx_size", "ONNX fp32 size", _deployed("fp32_bytes"), False, False,
           "Size of the fp32 .onnx file", "deployment"),
    Metric("int8_ms", "int8 CPU ms", _deployed_ms("onnx_int8"), False, False,
           "Median ONNX Runtime latency of the int8 model at batch 1, CPU", "deployment"),
    Metric("onnx_ms", "ONNX fp32 CPU ms", _deployed_ms("onnx_fp32"), False, False,
           "Median ONNX Runtime latency of the fp32 model at batch 1, CPU", "deployment"),
)
BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
ACCURACIES = tuple(m for m in METRICS if m.accuracy)
COSTS = tuple(m for m in METRICS if not m.accuracy)
DEPLOYMENT = tuple(m for m in METRICS if m.group == "deployment")


@dataclass(frozen=True)
class MethodRow:
    """One method under one protocol version, aggregated over its seeds."""

    method: str
    family: str
    source: str  # repo-relative path of the method's file
    source_sha256: tuple[str, ...]  # distinct hashes over the seeds (more than one: code changed)
    seeds: tuple[int, ...]
    stats: dict[str, Stat | None]  # metric key -> mean/std over the seeds that carry it
    counts: dict[str, int]  # metric key -> how many seeds carry it
    per_seed: dict[str, tuple[float | None, ...]]  # metric key -> value per record, in order
    unreliable: bool | None  # any seed flagged; None when no seed was checked
    unreliable_reasons: tuple[str, ...]
    verified: bool | None  # False if any seed failed verification, True if one passed
    verified_seeds: int
    records: tuple[Record, ...]
    # Every seed carries per-example evidence: the row shows confidence intervals and gets a
    # rank range (bench/records/significance.py); without it, plain means.
    evidence: bool = True

    @property
    def is_reference(self) -> bool:
        return self.family == REFERENCE_FAMILY

    @property
    def flags(self) -> str:
        """Badges as plain text: the table shows them, filters read the fields."""
        out = []
        if self.unreliable:
            flagged = sum(bool(r.metrics.unreliable) for r in self.records)
            out.append(f"⚠ unreliable ({flagged}/{len(self.seeds)} seeds)")
        if self.verified is True:
            out.append(f"✓ verified ({self.verified_seeds}/{len(self.seeds)})")
        elif self.verified is False:
            out.append("✗ verification failed")
        return ", ".join(out)


def _stat(values: Iterable[float | None]) -> tuple[Stat | None, int]:
    present = [float(v) for v in values if v is not None]
    return (Stat.of(present) if present else None), len(present)


def aggregate(records: Iterable[Record]) -> list[MethodRow]:
    """One row per method (records of ONE protocol version), teacher and baseline first."""
    records = list(records)
    derived = {id(r): {"mce": m, "rel_mce": rel} for r, m, rel in with_mce(records)}
    rows = []
    for (_, method), recs in group(records).items():
        stats, counts, per_seed = {}, {}, {}
        for m in METRICS:
            per_seed[m.key] = tuple(m.read(r) if m.read else derived[id(r)][m.key] for r in recs)
            stats[m.key], counts[m.key] = _stat(per_seed[m.key])
        flags = [r.metrics.unreliable for r in recs]
        reasons = tuple(dict.fromkeys(x for r in recs for x in r.metrics.unreliable_reasons))
        verdicts = [r.verification.ok if r.verification else None for r in recs]
        rows.append(MethodRow(
            method=method, family=recs[0].family, source=recs[0].method_source,
            source_sha256=tuple(dict.fromkeys(r.method_source_sha256 for r in recs)),
            seeds=tuple(r.seed for r in recs), stats=stats, counts=counts, per_seed=per_seed,
            unreliable=None if all(f is None for f in flags) else any(f is True for f in flags),
            unreliable_reasons=reasons,
            verified=(False if False in verdicts else True if True in verdicts else None),
            verified_seeds=verdicts.count(True),
            records=tuple(recs), evidence=has_evidence(recs)))
    return rows


def rank(rows: list[MethodRow], by: str) -> dict[str, int]:
    """Competition ranks (1, 2, 2, 4) of the non-reference methods that have metric `by`.

    Reference rows (teacher, baseline) are context, not entries: they get no rank.
    """
    metric = BY_KEY[by]
    scored = [(r.stats[by].mean, r.method) for r in rows
              if not r.is_reference and r.stats[by] is not None]
    sign = -1 if metric.higher_is_better else 1
    values = sorted(sign * v for v, _ in scored)
    return {name: values.index(sign * v) + 1 for v, name in scored}


def rank_ranges(rows: list[MethodRow], by: str) -> dict[str, RankRange]:
    """Significance-aware rank ranges of the non-reference methods by `by` (paired t-tests over
    seeds, bench/records/significance.py: the same function `kdbench show` and the CSV use).
    Empty for costs; rows without per-example evidence get none."""
    return table_ranges([rec for r in rows for rec in r.records], by, REFERENCE_FAMILY)


def select(rows: list[MethodRow], families: Iterable[str], hide_unreliable: bool = False,
           only_verified: bool = False) -> list[MethodRow]:
    """The rows the sidebar's filters keep. Reference rows survive `only_verified`: they are
    the context verified results are read against."""
    families = set(families)
    return [r for r in rows
            if r.family in families
            and not (hide_unreliable and r.unreliable)
            and (not only_verified or r.verified is True or r.is_reference)]
