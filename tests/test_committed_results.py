"""The committed results are valid leaderboard data: CI rejects a bad result in a pull request."""

import shutil

import pytest

from bench.protocols import PROTOCOLS
from bench.records import find_entries, find_records, read_record
from support import REPO, kdbench

RESULTS = REPO / "results"


@pytest.mark.integration
def test_committed_results_validate():
    assert find_records([RESULTS]), "results/ holds no records"
    proc = kdbench("validate", str(RESULTS))
    assert proc.returncode == 0, proc.stderr
    assert "0 invalid" in proc.stdout


def test_every_committed_method_is_a_complete_entry():
    for protocol in (p for p in RESULTS.iterdir() if p.is_dir()):
        assert protocol.name in PROTOCOLS
        methods = {p.parent.name for p in find_records([protocol])}
        entries = {p.parent.name for p in find_entries([protocol])}
        assert methods == entries, f"{protocol.name}: records without an entry: {methods - entries}"


@pytest.mark.parametrize("method", ["vanilla", "defensive"])
@pytest.mark.integration
def test_a_committed_checkpoint_reproduces_its_record(method, tmp_path):
    """`kdbench verify` on a copy (it writes into the record): weights and numbers match."""
    src = RESULTS / "mnist5k" / method
    dst = tmp_path / "results" / "mnist5k" / method
    shutil.copytree(src, dst)
    proc = kdbench("verify", str(dst / "seed-0.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_record(dst / "seed-0.json")
    assert rec.verification.ok


# The checks that detect gradient masking (a model that hides its gradients from white-box
# attacks); the convergence check (2x iterations) flags an attack that is not converged, which
# on the weakest non-robust students it is on some seeds (docs/fidelity.md).
MASKING_CHECKS = {"transfer_not_stronger_than_whitebox", "square_not_stronger_than_whitebox",
                  "large_eps_reaches_chance"}


def _failed(path) -> set[str]:
    return {c.name for c in read_record(path).metrics.sanity_checks or [] if not c.passed}


def test_defensive_distillation_is_flagged_for_masking_and_baseline_and_vanilla_are_not():
    for path in find_records([RESULTS / "mnist5k" / "defensive"]):
        assert read_record(path).metrics.unreliable and _failed(path) & MASKING_CHECKS, path
    for method in ("baseline", "vanilla"):
        for path in find_records([RESULTS / "mnist5k" / method]):
            assert not _failed(path) & MASKING_CHECKS, path
