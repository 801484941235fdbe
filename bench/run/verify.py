"""`kdbench verify`: reload a record's checkpoint and re-evaluate clean and PGD accuracy.

The record must be current (bench/run/spec.py: `staleness`: made by today's code, against today's
teacher, its checkpoint present with the recorded sha256); the checkpoint is read with
weights_only=True (never unpickling arbitrary objects). Evaluation repeats the benchmark's own (same test examples, same seeded
PGD random starts, the record's thread count), so on the same kind of machine the numbers come
back exactly; the tolerance absorbs floating-point differences between machines.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch

from bench import __version__
from bench.checkpoints import load_weights
from bench.data.registry import load_split
from bench.errors import RecordError
from bench.eval.attacks import CleanAccuracy, WhiteBoxAttacks
from bench.eval.suite import evaluate
from bench.models.registry import build_model
from bench.progress import Reporter
from bench.records.layout import atomic_write_text
from bench.records.schema import Record, Verification
from bench.records.validate import check_record, record_protocol
from bench.run.spec import job_spec, staleness

DEFAULT_TOLERANCE = 0.5  # percentage points


def verify(path: Path, device: str = "cpu", tolerance: float = DEFAULT_TOLERANCE,
           data_dir: Path | None = None) -> tuple[Record, Verification]:
    """Re-evaluate the record at `path`; writes the verification into it and returns both."""
    path = Path(path)
    rec, problems = check_record(path, allow_smoke=True)
    if rec is None or problems:
        raise RecordError("cannot verify: " + "; ".join(problems))
    protocol = record_protocol(rec)
    results_dir = path.parents[2]
    stale = staleness(rec, job_spec(protocol, rec.method, rec.seed), protocol,
                      results_dir=results_dir)
    if stale:
        raise RecordError(f"cannot verify {path}: the record " + "; ".join(stale)
                          + f"; rerun it: kdbench run {protocol.run_options} --methods "
                          f"{rec.method} --seeds {rec.seed} --results-dir {results_dir}")
    ckpt = results_dir / rec.checkpoint.file
    arch = rec.arch
    model = build_model(arch, protocol).to(device)
    try:
        model.load_state_dict(load_weights(ckpt, device)[0])
    except (KeyError, RuntimeError) as e:
        raise RecordError(f"{ckpt} does not hold {arch} weights: {e}") from None
    threads = torch.get_num_threads()
    torch.set_num_threads(rec.provenance.threads)
    try:
        split = load_split(protocol, data_dir)
        metrics = evaluate(model, protocol, split.x_test, split.y_test, device,
                           Reporter(quiet=True), evaluators=(CleanAccuracy(), WhiteBoxAttacks()))
    finally:
        torch.set_num_threads(threads)
    clean, pgd = metrics["clean_acc"], metrics["pgd_acc"]
    ok = (abs(clean - rec.metrics.clean_acc) <= tolerance
          and abs(pgd - rec.metrics.pgd_acc) <= tolerance)
    verification = Verification(ok=ok, clean_acc=clean, pgd_acc=pgd, tolerance=tolerance,
                                verified_at=datetime.now(timezone.utc), kdbench=__version__,
                                device=device)
    updated = rec.model_copy(update={"verification": verification})
    atomic_write_text(path, updated.model_dump_json(indent=2) + "\n")
    return updated, verification
