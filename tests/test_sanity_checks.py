"""The gradient-masking checks flag a masked model and pass a normal one."""

import dataclasses

import pytest
import torch
from torch import nn

from attacks import sanity
from bench.eval.attacks import CleanAccuracy, StrongAttacks, WhiteBoxAttacks
from bench.eval.sanity import SanityChecks, TransferSource
from bench.eval.curve import EpsCurve
from bench.eval.context import EvalContext
from bench.progress import Reporter


class LogitScale(nn.Module):
    """Scales logits by a huge constant: same predictions, saturated softmax, zero gradients.
    The textbook gradient-masking model (what defensive distillation does at T = 100)."""

    def __init__(self, model, scale=1e4):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


def _checks(model, protocol, split, teacher, **suite):
    e = dict(sanity_n=300, square_n=100, convergence_n=200, curve_n=300)
    p = dataclasses.replace(protocol, eval=dataclasses.replace(protocol.eval, **{**e, **suite}))
    ctx = EvalContext(p, split.x_test[:300], split.y_test[:300], "cpu", Reporter(quiet=True),
                      transfer=TransferSource(teacher, "teacher"))
    for ev in (CleanAccuracy(), WhiteBoxAttacks(), StrongAttacks(), EpsCurve()):
        ev(model, ctx)
    return SanityChecks()(model, ctx)


def _check(out, name):
    return next(c for c in out["sanity_checks"] if c["name"] == name)


def test_a_normal_model_passes_every_check(trained_pair, protocol, split):
    student, teacher = trained_pair
    out = _checks(student, protocol, split, teacher)
    assert out["unreliable"] is False, out["unreliable_reasons"]
    names = [c["name"] for c in out["sanity_checks"]]
    assert names == ["pgd_not_weaker_than_fgsm", "more_steps_do_not_help",
                     "accuracy_decreases_with_eps", "transfer_not_stronger_than_whitebox",
                     "square_not_stronger_than_whitebox", "large_eps_reaches_chance"]


def test_a_gradient_masking_model_is_flagged(trained_pair, protocol, split):
    student, teacher = trained_pair
    out = _checks(LogitScale(student), protocol, split, teacher)
    assert out["unreliable"] is True
    failed = {c["name"] for c in out["sanity_checks"] if not c["passed"]}
    # masked gradients: the black-box attacks and the large radius expose it
    assert {"transfer_not_stronger_than_whitebox", "large_eps_reaches_chance"} <= failed
    assert all(r.split(":")[0] in failed for r in out["unreliable_reasons"])


def test_the_convergence_check_fails_an_under_iterated_attack(trained_pair, protocol, split):
    """Carlini et al. 2019: with twice the iterations an unconverged attack finds more."""
    student, teacher = trained_pair
    # PGD-2 with steps of eps/4 cannot leave half the radius; with twice the steps it can
    weak = _checks(student, protocol, split, teacher, pgd_steps=2,
                   pgd_step_size=protocol.eval.eps / 4, strong_attacks=())
    check = _check(weak, "more_steps_do_not_help")
    assert not check["passed"] and "PGD-4 fools" in check["detail"], check
    converged = _checks(student, protocol, split, teacher)
    assert _check(converged, "more_steps_do_not_help")["passed"]


@pytest.mark.parametrize("pgd, fgsm, passed", [(10.0, 30.0, True), (31.5, 30.0, True),
                                               (35.0, 30.0, False)])
def test_pgd_weaker_than_fgsm_beyond_tolerance_fails(pgd, fgsm, passed):
    assert sanity.pgd_not_weaker_than_fgsm(pgd, fgsm, tol=2.0).passed is passed


@pytest.mark.parametrize("extra, passed", [(0.0, True), (2.0, True), (2.5, False)])
def test_more_iterations_may_add_at_most_the_tolerance(extra, passed):
    assert sanity.more_steps_do_not_help(extra, "PGD-40", 50.0, tol=2.0).passed is passed


def test_the_eps_curve_must_not_rise():
    assert sanity.eps_curve_is_monotone([("0.05", 60.0), ("0.1", 41.0), ("0.2", 42.5)], 2.0).passed
    bad = sanity.eps_curve_is_monotone([("0.05", 60.0), ("0.1", 41.0), ("0.2", 45.0)], 2.0)
    assert not bad.passed and "rises by 4.0 pts from eps 0.1 to 0.2" in bad.detail


def test_autoattack_warnings_become_failed_checks():
    checks = sanity.from_autoattack([
        "there are 3 points with zero gradient! This might lead to unreliable evaluation with "
        "gradient-based attacks. See flags_doc.md for details."])
    failed = [c for c in checks if not c.passed]
    assert [c.name for c in failed] == ["autoattack_no_zero_gradients"]
    assert "3 points with zero gradient" in failed[0].detail
    assert all(c.passed for c in sanity.from_autoattack([]))


def test_verdict_collects_reasons():
    checks = [sanity.large_eps_reaches_chance(45.0, "0.5", 10, 2.0),
              sanity.more_steps_do_not_help(1.0, "PGD-40", 10.5, 2.0)]
    unreliable, reasons = sanity.verdict(checks)
    assert unreliable and reasons == ["large_eps_reaches_chance: PGD at eps 0.5: 45.0% vs "
                                      "chance 10.0% (tolerance 2.0 pts)"]
