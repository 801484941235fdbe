"""The record's per-example evidence (`metrics.evidence`): the evaluation's correctness masks,
packed (bench/records/bits.py). Every accuracy the suite reports is the mean of one of them."""

from __future__ import annotations

import torch

from bench.records.bits import pack


def _pack(mask: torch.Tensor) -> str:
    return pack(mask.detach().cpu().numpy().astype(bool))


def collect(masks: dict[str, torch.Tensor], robust: torch.Tensor,
            corruptions: dict[tuple[str, int], torch.Tensor]) -> dict | None:
    """The `evidence` section from the suite's masks (EvalContext: the attacks behind robust_acc,
    their worst case, and (corruption, severity) in the suite's order); None when the suite ran
    without clean accuracy, FGSM or PGD (e.g. `kdbench verify`'s partial re-evaluation)."""
    if not {"clean", "fgsm", "pgd"} <= set(masks):
        return None
    packed: dict[str, list[str]] = {}
    for (name, _), mask in corruptions.items():  # severity 1 first
        packed.setdefault(name, []).append(_pack(mask))
    n = len(masks["clean"])
    out = {"n": n, "clean": _pack(masks["clean"]), "fgsm": _pack(masks["fgsm"]),
           "pgd": _pack(masks["pgd"]), "robust": _pack(robust), "corruptions": packed}
    if len(robust) != n:  # AutoAttack ran on the first len(robust) examples
        out["robust_n"] = len(robust)
    if "autoattack" in masks:
        out["autoattack"] = _pack(masks["autoattack"])
    return out
