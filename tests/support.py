"""Helpers for the tests (fixtures live in conftest.py; helpers are imported from here)."""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np

from bench.protocols import get_protocol
from bench.records import Record, read_record
from bench.records.bits import pack, pct

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "results"
MNIST5K_HASH = get_protocol("mnist5k").hash


def kdbench(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
            **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, env=env, timeout=timeout, **kwargs)


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def comparable(path: Path) -> tuple[dict, tuple]:
    """A record without what legitimately differs between two runs: timings and timestamps."""
    d = read_record(path).model_dump(mode="json")
    d["training"].pop("wall_s")
    d.pop("eval_wall_s")
    for k in ("started_at", "finished_at", "git_commit"):
        d["provenance"].pop(k)
    eff = d["metrics"].pop("efficiency")
    if d["metrics"].get("deployment"):  # its seconds and latencies are timings too
        for k in ("wall_s", "latency"):
            d["metrics"]["deployment"].pop(k)
    return d, (eff["params"], eff["size_bytes"], eff["flops"])


def changed_file(monkeypatch, relative: str) -> None:
    """As if the repository file `relative` had been edited since records were made: its sha256,
    as job identities read it (bench/provenance.py), differs from the file's."""
    import bench.provenance as provenance
    real = provenance.file_sha256
    target = (REPO / relative).resolve()

    def digest(path):
        sha = real(path)
        return sha[::-1] if Path(path).resolve() == target else sha
    monkeypatch.setattr(provenance, "file_sha256", digest)


# -- plugins: methods from outside the source tree -----------------------------------------------

METHOD_HEADER = "import torch\nfrom methods.api import Method, register_method\n"


def method_source(name: str, body: str, family: str = "logit", extra: str = "") -> str:
    """The source of a module that registers a method `name` whose loss() runs `body`."""
    return METHOD_HEADER + extra + textwrap.dedent(f"""
        @register_method
        class M(Method):
            name, description, family = "{name}", "test method", "{family}"

            def loss(self, step):
        """) + textwrap.indent(textwrap.dedent(body), " " * 8)


def plugin_site(root: Path, modules: dict[str, str]) -> dict[str, str]:
    """Install methods as a distribution in `root`: a package of `modules` (name -> source, each
    registering its method on import) with one `kdbench.methods` entry point per module, the way
    a method from its author's own package is found. Returns an environment whose PYTHONPATH puts
    `root` first, for subprocesses. Nothing is written into the source tree."""
    pkg_name = f"kdb_test_plugins_{uuid.uuid4().hex[:8]}"
    pkg = Path(root) / pkg_name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, source in modules.items():
        (pkg / f"{name}.py").write_text(source)
    info = Path(root) / f"{pkg_name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pkg_name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[kdbench.methods]\n" + "".join(f"{n} = {pkg_name}.{n}\n" for n in modules))
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def plugin_file(env: dict[str, str], name: str) -> Path:
    """Where `plugin_site` put module `name`."""
    root = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    return next(root.glob(f"kdb_test_plugins_*/{name}.py"))


# -- records for the leaderboard and record tests ---------------------------------------------------

def committed_record_path(method: str = "vanilla", seed: int = 0) -> Path:
    return COMMITTED / "mnist5k" / method / f"seed-{seed}.json"


def make_record(template: dict, method: str, seed: int, *, family: str = "logit",
                clean: float = 90.0, fgsm: float = 50.0, pgd: float = 30.0,
                noise: tuple[float, ...] = (88.0, 86.0, 84.0, 82.0, 80.0),
                protocol: str = "mnist5k", protocol_hash: str = MNIST5K_HASH,
                smoke: bool = False, cpu_ms: float | None = None, **metrics) -> dict:
    """A valid, non-smoke record dict; `metrics` overrides any other metrics field."""
    d = copy.deepcopy(template)
    d.update(method=method, seed=seed, family=family, protocol=protocol,
             protocol_hash=protocol_hash, smoke=smoke, method_source=f"methods/{method}.py",
             verification=None)
    m = d["metrics"]
    # Neutral defaults: no sanity verdict, no AutoAttack, unless a test asks for them.
    m.update(sanity_checks=None, unreliable=None, unreliable_reasons=[], autoattack_acc=None)
    # The template's per-example bits would contradict the numbers chosen here: none, as in
    # records made before evidence was stored (`evidence_record` builds records with evidence).
    m.pop("evidence", None)
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


# -- records with per-example evidence, built from chosen correctness masks --------------------------
# Every accuracy in such a record is the mean of its mask, as the evaluation suite writes it.

MNIST5K = get_protocol("mnist5k")
SHA = "0" * 64


def correct(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """n examples, exactly k of them (at random places) answered correctly."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=k, replace=False)] = True
    return mask


def _timings() -> dict:
    return {"device_name": "test CPU", "threads": 1, "timings": [
        {"batch": 1, "median_ms": 0.3, "p50_ms": 0.3, "p90_ms": 0.35, "throughput_ips": 3000.0,
         "samples": 10, "iqr_over_median": 0.05}]}


def evidence_record(method: str, seed: int, clean: np.ndarray, fgsm: np.ndarray,
                    pgd: np.ndarray, corruptions: dict[str, list[np.ndarray]], *,
                    autoattack: np.ndarray | None = None, family: str = "logit",
                    eps_curve: list[dict] | None = None, protocol=MNIST5K) -> dict:
    """A valid schema-2 record dict of `protocol` whose accuracies are the masks' means."""
    attacked = [clean, fgsm, pgd] + ([autoattack] if autoattack is not None else [])
    robust = np.logical_and.reduce(attacked)
    table = {name: [pct(m) for m in masks] for name, masks in corruptions.items()}
    values = [a for accs in table.values() for a in accs]
    d = {
        "schema_version": 2, "protocol": protocol.name, "protocol_hash": protocol.hash,
        "smoke": False, "method": method, "family": family, "hparams": {},
        "method_source": f"methods/{method}.py", "method_source_sha256": SHA, "seed": seed,
        "job_key": "1" * 32, "harness_version": 2, "arch": protocol.student_arch,
        "sources": {f"methods/{method}.py": SHA}, "teacher_key": "2" * 16,
        "metrics": {
            "clean_acc": pct(clean), "fgsm_acc": pct(fgsm), "pgd_acc": pct(pgd),
            "autoattack_acc": None if autoattack is None else pct(autoattack),
            "robust_acc": pct(robust), "eps_curve": eps_curve,
            "corruptions_acc": round(statistics.fmean(values), 4), "corruptions": table,
            "attacks": {"norm": "Linf", "eps": protocol.eval.eps_label,
                        "fgsm": {"library": "torchattacks", "steps": 1,
                                 "step_size": protocol.eval.eps},
                        "pgd": {"library": "torchattacks", "steps": 20, "step_size": 0.01,
                                "random_start": True, "restarts": 1},
                        "autoattack": None if autoattack is None else {
                            "library": "pyautoattack", "version": "standard", "seed": 0}},
            "efficiency": {"params": 6274, "size_bytes": 32993, "flops": 1016704,
                           "cpu": _timings(), "gpu": None,
                           "gpu_absent_reason": "no GPU in the test"},
            "evidence": {
                "n": len(clean), "clean": pack(clean), "fgsm": pack(fgsm), "pgd": pack(pgd),
                "autoattack": None if autoattack is None else pack(autoattack),
                "robust": pack(robust),
                "corruptions": {name: [pack(m) for m in masks]
                                for name, masks in corruptions.items()}},
        },
        "training": {"epochs": 8, "steps": 256, "final_epoch_loss": 0.5, "wall_s": 10.0},
        "eval_wall_s": 5.0,
        "provenance": {"kdbench": "0.1.0", "python": "3.11", "torch": "2", "torchvision": "0",
                       "torchattacks": "3.3.0", "numpy": "2", "platform": "test",
                       "device": "cpu", "cpu": "test CPU", "gpu": None, "threads": 1,
                       "data_fingerprint": "3" * 16, "git_commit": None,
                       "started_at": "2026-01-01T00:00:00Z",
                       "finished_at": "2026-01-01T00:01:00Z"},
    }
    Record.model_validate(d)  # never an invalid record by accident
    return d


def model_record(method: str, seed: int, acc: dict[str, float], rng: np.random.Generator, *,
                 n: int = 1000, family: str = "logit", protocol=MNIST5K) -> dict:
    """A record whose clean, FGSM, PGD and gaussian_noise (2 severities) accuracies are about
    `acc[...]` (percent, rounded to whole examples), drawn independently at random places."""
    k = {key: round(n * acc[key] / 100) for key in ("clean", "fgsm", "pgd", "noise")}
    return evidence_record(method, seed, correct(n, k["clean"], rng), correct(n, k["fgsm"], rng),
                           correct(n, k["pgd"], rng),
                           {"gaussian_noise": [correct(n, k["noise"], rng) for _ in range(2)]},
                           family=family, protocol=protocol)


def write_record(results: Path, d: dict) -> Path:
    path = results / d["protocol"] / d["method"] / f"seed-{d['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d, indent=1))
    return path


# -- RobustBench's model zoo ---------------------------------------------------------------------

def write_zoo_checkpoint(model_dir: Path, name: str, prefix: str = "module.",
                         wrap: bool = True, seed: int = 0) -> tuple[Path, dict]:
    """Random weights of RobustBench's CIFAR-10 L-inf zoo entry `name`, saved where robustbench's
    load_model looks (<model_dir>/cifar10/Linf/<name>.pt) the way checkpoints of the zoo come:
    keys with the `prefix` DataParallel adds, under 'state_dict' when `wrap`. The network is
    built by robustbench itself, not by kdbench. Returns the path and the (unprefixed) weights."""
    import torch

    from bench.robustbench_compat import import_robustbench
    import_robustbench()
    from robustbench.model_zoo.cifar10 import cifar_10_models
    from robustbench.model_zoo.enums import ThreatModel

    torch.manual_seed(seed)
    model = cifar_10_models[ThreatModel.Linf][name]["model"]()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    prefixed = {prefix + k: v for k, v in state.items()}
    path = Path(model_dir) / "cifar10" / "Linf" / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": prefixed, "epoch": 100} if wrap else prefixed, path)
    return path, state


def tab(at, label: str):
    """The leaderboard tab titled `label` in a Streamlit AppTest (tabs are found by title, not
    position: a new tab must not silently retarget a test)."""
    return next(t for t in at.tabs if t.label == label)
