"""The gradient-masking checks flag a masked model and pass a normal one."""

import dataclasses

import pytest
import torch
from torch import nn

from attacks import sanity
from bench.eval.suite import CleanAccuracy, EvalContext, SanityChecks, TransferSource, WhiteBoxAttacks
from bench.progress import Reporter


class LogitScale(nn.Module):
    """Scales logits by a huge constant: same predictions, saturated softmax, zero gradients.
    The textbook gradient-masking model (what defensive distillation does at T = 100)."""

    def __init__(self, model, scale=1e4):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


def _checks(model, protocol, split, teacher):
    p = dataclasses.replace(protocol, eval=dataclasses.replace(protocol.eval, sanity_n=300,
                                                                square_n=100))
    ctx = EvalContext(p, split.x_test[:300], split.y_test[:300], "cpu", Reporter(quiet=True),
                      transfer=TransferSource(teacher, "teacher"))
    for p_ in model.parameters():
        p_.requires_grad_(False)
    for ev in (CleanAccuracy(), WhiteBoxAttacks()):
        ev(model, ctx)
    return SanityChecks()(model, ctx)


def test_a_normal_model_passes_every_check(trained_pair, protocol, split):
    student, teacher = trained_pair
    out = _checks(student, protocol, split, teacher)
    assert out["unreliable"] is False, out["unreliable_reasons"]
    names = [c["name"] for c in out["sanity_checks"]]
    assert names == ["pgd_not_weaker_than_fgsm", "more_steps_do_not_help",
                     "transfer_not_stronger_than_whitebox", "square_not_stronger_than_whitebox",
                     "large_eps_reaches_chance"]


def test_a_gradient_masking_model_is_flagged(trained_pair, protocol, split):
    student, teacher = trained_pair
    out = _checks(LogitScale(student), protocol, split, teacher)
    assert out["unreliable"] is True
    failed = {c["name"] for c in out["sanity_checks"] if not c["passed"]}
    # masked gradients: the black-box attacks and the large radius expose it
    assert {"transfer_not_stronger_than_whitebox", "large_eps_reaches_chance"} <= failed
    assert all(r.split(":")[0] in failed for r in out["unreliable_reasons"])


@pytest.mark.parametrize("pgd, fgsm, passed", [(10.0, 30.0, True), (31.5, 30.0, True),
                                               (35.0, 30.0, False)])
def test_pgd_weaker_than_fgsm_beyond_tolerance_fails(pgd, fgsm, passed):
    assert sanity.pgd_not_weaker_than_fgsm(pgd, fgsm, tol=2.0).passed is passed


def test_verdict_collects_reasons():
    checks = [sanity.large_eps_reaches_chance(45.0, "0.5", 10, 2.0),
              sanity.more_steps_do_not_help(10.0, 10.5, 20, 2.0)]
    unreliable, reasons = sanity.verdict(checks)
    assert unreliable and reasons == ["large_eps_reaches_chance: PGD at eps 0.5: 45.0% vs "
                                      "chance 10.0% (tolerance 2.0 pts)"]
