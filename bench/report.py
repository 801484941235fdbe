"""Tables for the terminal: the summary of a set of records (`kdbench run`, `show`, `submit`) and
the registries (`kdbench protocols`, `kdbench methods`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.table import Table

from bench.records.aggregate import Stat, group, with_mce
from bench.records.schema import Record


# column title -> how to read the number from a record
COLUMNS: dict[str, Callable[[Record], float | None]] = {
    "clean %": lambda r: r.metrics.clean_acc,
    "corruptions %": lambda r: r.metrics.corruptions_acc,
    "FGSM %": lambda r: r.metrics.fgsm_acc,
    "PGD %": lambda r: r.metrics.pgd_acc,
    "AutoAttack %": lambda r: r.metrics.autoattack_acc,
    "robust %": lambda r: r.metrics.robust_acc,
}


def _cell(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return str(Stat.of(present)) if present and len(present) == len(values) else "—"


def table(records: Iterable[Record], title: str = "kdbench results") -> Table:
    records = list(records)
    mces = {id(r): (m, rel) for r, m, rel in with_mce(records)}
    columns = {k: f for k, f in COLUMNS.items()
               if any(f(r) is not None for r in records)}  # no all-empty AutoAttack column
    t = Table(title=title)
    for col in ("protocol", "method", "family", "seeds", *columns, "mCE", "rel. mCE",
                "unreliable", "params", "CPU b1 ms"):
        t.add_column(col, justify="left" if col in ("protocol", "method", "family") else "right")
    for (protocol, method), recs in group(records).items():
        eff = recs[0].metrics.efficiency
        lat = Stat.of(r.metrics.efficiency.cpu.timings[0].median_ms for r in recs)
        flagged = sum(bool(r.metrics.unreliable) for r in recs)
        t.add_row(protocol, method, recs[0].family, str(len(recs)),
                  *(_cell([f(r) for r in recs]) for f in columns.values()),
                  _cell([mces[id(r)][0] for r in recs]),
                  _cell([mces[id(r)][1] for r in recs]),
                  f"[yellow]{flagged}/{len(recs)}[/]" if flagged else "no",
                  f"{eff.params:,}", f"{lat.mean:.3f}")
    return t


def protocols_table(default: str) -> Table:
    from bench.models.registry import build_model, count_params
    from bench.protocols import PROTOCOLS
    t = Table(title="protocols")
    for col in ("name", "hash", "dataset", "teacher", "student", "epochs T/S", "seeds", "eps",
                "description"):
        t.add_column(col)
    for name in sorted(PROTOCOLS):
        p = PROTOCOLS[name]()
        t.add_row(name + (" (default)" if name == default else ""), p.hash, p.dataset,
                  f"{p.teacher_arch} ({count_params(build_model(p.teacher_arch, p)):,})",
                  f"{p.student_arch} ({count_params(build_model(p.student_arch, p)):,})",
                  f"{p.teacher_recipe.epochs}/{p.student_recipe.epochs}",
                  ",".join(map(str, p.seeds)), p.eval.eps_label, p.description)
    return t


def methods_table(specs: dict) -> Table:
    """Every registered method with its defaults, file and origin (builtin or entry point)."""
    from bench.provenance import relative_to_repo
    from bench.run.spec import TEACHER
    t = Table(title="methods")
    for col in ("name", "family", "hyper-parameters", "description", "source", "from"):
        t.add_column(col)
    t.add_row(TEACHER, "reference", "", "The protocol's teacher itself (trained once, cached)",
              "bench/models/", "builtin")
    for name in sorted(specs):
        cls = specs[name].cls
        hp = ", ".join(f"{k}={v}" for k, v in cls.Hparams().model_dump().items())
        t.add_row(name, cls.family, hp, cls.description, relative_to_repo(cls.source_file()),
                  specs[name].origin)
    return t
