"""`kdbench verify`: reload a record's checkpoint and re-evaluate clean and PGD accuracy.

The checkpoint is read with weights_only=True (never unpickling arbitrary objects) and must match
the sha256 in the record. Evaluation repeats the benchmark's own (same test examples, same seeded
PGD random starts, the record's thread count), so on the same kind of machine the numbers come
back exactly; the tolerance absorbs floating-point differences between machines.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch

from bench import __version__
from bench.checkpoints import file_sha256, load_checkpoint
from bench.data import load_split
from bench.errors import RecordError
from bench.evaluate import CleanAccuracy, WhiteBoxAttacks, evaluate
from bench.models import build_model
from bench.progress import Reporter
from bench.protocols import get_protocol
from bench.records import Record, Verification, atomic_write_text, read_record
from bench.validate import check_record

DEFAULT_TOLERANCE = 0.5  # percentage points


def verify(path: Path, device: str = "cpu", tolerance: float = DEFAULT_TOLERANCE,
           data_dir: Path | None = None) -> tuple[Record, Verification]:
    """Re-evaluate the record at `path`; writes the verification into it and returns both."""
    path = Path(path)
    rec, problems = check_record(path, allow_smoke=True)
    if rec is None or problems:
        raise RecordError("cannot verify: " + "; ".join(problems))
    if rec.checkpoint is None:
        raise RecordError(f"{path}: the record names no checkpoint; rerun the job to produce one")
    results_dir = path.parents[2]
    ckpt = results_dir / rec.checkpoint.file
    if not ckpt.exists():
        raise RecordError(f"{path}: its checkpoint {ckpt} does not exist")
    if file_sha256(ckpt) != rec.checkpoint.sha256:
        raise RecordError(f"{ckpt} does not match the sha256 in {path}: it is not the evaluated "
                          "model")
    protocol = get_protocol(rec.protocol)
    if rec.smoke:
        protocol = protocol.for_smoke()
    arch = protocol.teacher_arch if rec.method == "teacher" else protocol.student_arch
    model = build_model(arch, protocol).to(device)
    try:
        model.load_state_dict(load_checkpoint(ckpt, device)["state_dict"])
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
