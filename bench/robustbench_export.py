"""Publish a kdbench result in RobustBench's format (`kdbench export-robustbench`).

For one record (a method, a seed, a CIFAR-10 protocol), with AutoAttack measured (`--full`):

    OUT/model_info/cifar10/Linf/<Name>.json   the file RobustBench's repository keeps per model
    OUT/models/cifar10/Linf/<Name>.pt         the record's checkpoint, as robustbench's load_model
                                              reads it ({'state_dict': ...}), byte for byte
    OUT/kdbench-robustbench.json              what kdbench needs to register <Name> (architecture,
                                              protocol, teacher), for `register_exported`

The JSON has the fields, order and types of the repository's model_info/cifar10/Linf/*.json
(strings for eps and accuracies, percent with two decimals): link, name, authors,
additional_data, number_forward_passes, dataset, venue, architecture, eps, clean_acc, reported,
autoattack_acc, footnote, unreliable. `reported` is our own AutoAttack number (the result this
export reports); `unreliable` is the record's gradient-masking verdict.

robustbench's `load_model(name, model_dir, dataset, threat_model)` resolves a name through
`robustbench.model_zoo.models.model_dicts[dataset][threat_model][name]`: an entry
{'model': constructor, 'gdrive_id': id}. The zoo cannot know our architectures, so an exported
model loads only in a Python process where kdbench registered it:

    from bench.robustbench_export import register_exported
    register_exported("OUT")
    model = load_model("<Name>", model_dir="OUT/models", dataset="cifar10", threat_model="Linf")

Limits: the checkpoint file must be present (the entry's gdrive_id is empty: nothing to download);
kdbench must be installed where it loads (the constructor is kdbench's); to enter RobustBench's
own zoo the architecture has to be contributed to robustbench.model_zoo.architectures. Every
export is checked here: the written checkpoint, loaded back through `load_model`, gives logits
identical to kdbench's model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.checkpoints import load_weights
from bench.errors import KdbenchError, UsageError
from bench.files import atomic_write
from bench.models.registry import build_model
from bench.models.zoo import DATASET, THREAT_MODEL
from bench.protocols import Protocol, get_protocol
from bench.records.layout import read_record, record_path
from bench.records.validate import results_protocol
from bench.robustbench_compat import import_robustbench
from bench.run.spec import TEACHER, job_seeds, job_spec, method_spec, staleness

MANIFEST = "kdbench-robustbench.json"
ARCHITECTURES = {"resnet9": "ResNet-9", "resnet9-quarter": "ResNet-9 (quarter width)"}
# robustbench's load_model strips these wherever they occur in a key (rm_substr_from_state_dict).
MANGLED = ("module.", "model.")


@dataclass(frozen=True)
class Paper:
    """What only the authors know; RobustBench's fields of the same names."""

    name: str = ""  # the paper's title
    authors: str = ""
    link: str = ""
    venue: str = ""  # robustbench shows "" as "Unpublished"


@dataclass(frozen=True)
class Exported:
    name: str
    info: Path
    checkpoint: Path
    record: Path


def default_name(protocol: str, method: str, seed: int) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"Kdbench_{protocol}_{method}_seed{seed}")


def _zoo() -> dict:
    import_robustbench()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    from robustbench.model_zoo.models import model_dicts
    return model_dicts[BenchmarkDataset(DATASET)][ThreatModel(THREAT_MODEL)]


def register_exported(out_dir: Path) -> list[str]:
    """Register every model exported to `out_dir` in robustbench's model zoo (this process only),
    so `robustbench.utils.load_model(name, model_dir=out_dir/'models')` builds and loads it."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise UsageError(f"{path}: not found; export a model there first (kdbench "
                         "export-robustbench -o DIR)")
    manifest = json.loads(path.read_text())
    for name, entry in manifest.items():
        _register(name, entry)
    return list(manifest)


def _register(name: str, entry: dict) -> None:
    zoo = _zoo()
    if name in zoo and not zoo[name].get("kdbench"):
        raise UsageError(f"{name} is a model of RobustBench's own zoo; export under another "
                         "--name")
    protocol = get_protocol(entry["protocol"], entry["teacher_source"])
    protocol = protocol.for_smoke() if entry["smoke"] else protocol
    arch = entry["arch"]
    # gdrive_id must not be None for load_model to go on; it is used only when the file is absent.
    zoo[name] = {"model": lambda: build_model(arch, protocol), "gdrive_id": "", "kdbench": True}


def _record(p: Protocol, method: str, seed: int, results_dir: Path, allow_smoke: bool):
    """The record to export and its protocol (shrunk when it is a --smoke record)."""
    path = record_path(results_dir, p.name, method, seed)
    run = (f"kdbench run {p.run_options} --methods {method} --seeds {seed} --full "
           f"--results-dir {results_dir}")
    if not path.exists():
        raise UsageError(f"no record of {method} seed {seed} at {path}; run: {run}")
    rec = read_record(path)
    if rec.smoke:
        if not allow_smoke:
            raise UsageError(f"{path} is a --smoke record, never a result to publish; run: {run}")
        p, run = p.for_smoke(), run + " --smoke"
    reasons = staleness(rec, job_spec(p, method, seed), p, results_dir=results_dir, full=True)
    if reasons:
        raise UsageError(f"{path} cannot be exported: the record " + "; ".join(reasons)
                         + f"; run: {run}")
    return p, path, rec


def model_info(p: Protocol, rec, paper: Paper) -> dict:
    """The RobustBench model_info JSON of record `rec`, fields in the repository's order."""
    m = rec.metrics
    if p.teacher_source is not None:
        teacher = f"RobustBench's {p.teacher_source.name}"
    else:
        teacher = f"a {p.teacher_arch} teacher trained with {p.teacher_method}"
    uses_teacher = rec.method != TEACHER and method_spec(rec.method).cls.uses_teacher
    how = f"distilled from {teacher}" if uses_teacher else "trained without a teacher"
    footnote = (f"kdbench {rec.method} ({rec.family}), seed {rec.seed}, protocol {p.name} "
                f"({p.hash}{', smoke run' if p.smoke else ''}): {how}. Clean and AutoAttack "
                f"(standard, reference implementation) accuracy on the first {p.n_test} "
                "CIFAR-10 test images.")
    info = {
        "link": paper.link, "name": paper.name or f"kdbench: {rec.method} on {p.name}",
        "authors": paper.authors, "additional_data": False, "number_forward_passes": 1,
        "dataset": DATASET, "venue": paper.venue,
        "architecture": ARCHITECTURES.get(rec.arch, rec.arch), "eps": p.eval.eps_label,
        "clean_acc": f"{m.clean_acc:.2f}", "reported": f"{m.autoattack_acc:.2f}",
        "autoattack_acc": f"{m.autoattack_acc:.2f}", "footnote": footnote,
    }
    if m.unreliable is not None:
        info["unreliable"] = m.unreliable
    return info


def export(protocol: str, method: str, results_dir: Path, out_dir: Path, *,
           seed: int | None = None, name: str | None = None, paper: Paper = Paper(),
           allow_smoke: bool = False) -> Exported:
    """Write one record's model in RobustBench's format under `out_dir`, and check that robustbench
    loads it back (module docstring). A clear error, and nothing written, when the record is
    missing, stale or lacks AutoAttack."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    p = results_protocol(protocol, results_dir)
    if p.dataset != DATASET:
        raise UsageError(f"protocol {p.name!r} is on {p.dataset}; RobustBench's leaderboard this "
                         f"exports to is {DATASET} {THREAT_MODEL}")
    if method == TEACHER and p.teacher_source is not None:
        raise UsageError(f"the teacher of {p.name} is RobustBench's {p.teacher_source.name} "
                         "already")
    if method != TEACHER:
        method_spec(method)
    seeds = job_seeds(p, method)
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise UsageError(f"{method} runs seeds {seeds} under {p.name}, not {seed}")
    p, path, rec = _record(p, method, seed, results_dir, allow_smoke)
    name = name or default_name(p.name.replace("+", "_"), method, seed)
    src = results_dir / rec.checkpoint.file
    state_dict, _ = load_weights(src)
    bad = [k for k in state_dict if any(s in k for s in MANGLED)]
    if bad:
        raise KdbenchError(f"{src}: key {bad[0]!r} contains {' or '.join(MANGLED)}, which "
                           "robustbench's load_model strips: it could not load these weights")
    entry = {"arch": rec.arch, "protocol": p.name, "smoke": p.smoke, "protocol_hash": p.hash,
             "method": method, "seed": seed, "checkpoint_sha256": rec.checkpoint.sha256,
             "teacher_source": (None if rec.teacher_source is None
                                else rec.teacher_source.model_dump())}
    _register(name, entry)  # refuses a name of RobustBench's own zoo before anything is written
    info = out_dir / "model_info" / DATASET / THREAT_MODEL / f"{name}.json"
    ckpt = out_dir / "models" / DATASET / THREAT_MODEL / f"{name}.pt"
    atomic_write(ckpt, src.read_bytes())  # byte for byte: the record's sha256 names it
    atomic_write(info, (json.dumps(model_info(p, rec, paper), indent=2) + "\n").encode())
    try:
        _check_round_trip(out_dir, name, rec.arch, p, state_dict)
    except BaseException:
        for f in (ckpt, info):
            f.unlink(missing_ok=True)
        raise
    manifest_path = out_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    atomic_write(manifest_path, (json.dumps({**manifest, name: entry}, indent=2) + "\n").encode())
    return Exported(name, info, ckpt, path)


def _check_round_trip(out_dir: Path, name: str, arch: str, p: Protocol, state_dict: dict) -> None:
    """robustbench's load_model reads the export back to the same function, logit for logit."""
    from robustbench.utils import load_model
    theirs = load_model(name, model_dir=str(out_dir / "models"), dataset=DATASET,
                        threat_model=THREAT_MODEL)
    ours = build_model(arch, p)
    ours.load_state_dict(state_dict)
    x = torch.rand((8, *p.input_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = torch.equal(ours.eval()(x), theirs.eval()(x))
    if not same:
        raise KdbenchError(f"robustbench's load_model reads {name} back to other logits than "
                           "kdbench's model; nothing exported")
