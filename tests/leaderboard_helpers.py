"""Result records for the leaderboard tests, derived from a real record with chosen numbers."""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path

from bench.protocols import get_protocol
from bench.records import Record

MNIST5K_HASH = get_protocol("mnist5k").hash


def make_record(template: dict, method: str, seed: int, *, family: str = "logit",
                clean: float = 90.0, fgsm: float = 50.0, pgd: float = 30.0,
                noise: tuple[float, ...] = (88.0, 86.0, 84.0, 82.0, 80.0),
                protocol: str = "mnist5k", protocol_hash: str = MNIST5K_HASH,
                smoke: bool = False, cpu_ms: float | None = None, **metrics) -> dict:
    """A valid, non-smoke record dict; `metrics` overrides any other metrics field."""
    d = copy.deepcopy(template)
    d.update(method=method, seed=seed, family=family, protocol=protocol,
             protocol_hash=protocol_hash, smoke=smoke, method_source=f"methods/{method}.py")
    m = d["metrics"]
    # Neutral defaults: no sanity verdict, no AutoAttack, unless a test asks for them.
    m.update(sanity_checks=None, unreliable=None, unreliable_reasons=[], autoattack_acc=None)
    m["attacks"]["autoattack"] = None
    if metrics.get("autoattack_acc") is not None:
        m["attacks"]["autoattack"] = {"library": "pyautoattack", "version": "standard", "seed": 0}
    if metrics.get("unreliable") is not None and "sanity_checks" not in metrics:
        metrics["sanity_checks"] = [{"name": "pgd_not_weaker_than_fgsm",
                                     "passed": not metrics["unreliable"], "detail": "test"}]
    m.update(clean_acc=clean, fgsm_acc=fgsm, pgd_acc=pgd,
             robust_acc=min(clean, fgsm, pgd, metrics.get("autoattack_acc") or 100.0),
             corruptions={"gaussian_noise": list(noise)}, corruptions_acc=statistics.fmean(noise))
    if cpu_ms is not None:
        m["efficiency"]["cpu"]["timings"][0]["median_ms"] = cpu_ms
    m.update(metrics)
    Record.model_validate(d)  # the helper never writes an invalid record by accident
    return d


def write(results: Path, d: dict) -> Path:
    path = results / d["protocol"] / d["method"] / f"seed-{d['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d, indent=1))
    return path


def standard_results(template: dict, results: Path) -> Path:
    """teacher (1 seed), baseline and two KD methods (3 seeds each), varied numbers."""
    write(results, make_record(template, "teacher", 0, family="reference", clean=98.0, fgsm=40.0,
                               pgd=6.0, cpu_ms=0.5))
    for seed in range(3):
        write(results, make_record(template, "baseline", seed, family="reference",
                                   clean=95.0 + seed, fgsm=44.0 + seed, pgd=4.0 + seed,
                                   cpu_ms=0.25))
        write(results, make_record(template, "vanilla", seed, clean=96.0 + 0.5 * seed,
                                   fgsm=50.0 - seed, pgd=12.0 + 2 * seed, cpu_ms=0.3))
        write(results, make_record(template, "robustkd", seed, family="adversarial",
                                   clean=91.0 - seed, fgsm=70.0 + seed, pgd=60.0 + seed,
                                   cpu_ms=0.2 + 0.01 * seed))
    return results
