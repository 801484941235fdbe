"""Gradient-masking sanity checks (Carlini et al. 2019, "On Evaluating Adversarial Robustness";
Athalye, Carlini & Wagner 2018, "Obfuscated Gradients Give a False Sense of Security").

A model whose robustness comes from masked gradients fails at least one of these:

- PGD is not weaker than FGSM (an iterative attack that is weaker than one step is broken);
- doubling the PGD steps does not raise accuracy (more optimisation must not help the model);
- at a large radius accuracy falls to chance (any image can be moved to any other);
- black-box attacks (transfer from the teacher, Square) are not stronger than white-box ones.

Each check compares accuracies on the same examples; differences within `tolerance` percentage
points count as noise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def _fmt(x: float) -> str:
    return f"{x:.1f}%"


def pgd_not_weaker_than_fgsm(pgd: float, fgsm: float, tol: float) -> Check:
    return Check("pgd_not_weaker_than_fgsm", pgd <= fgsm + tol,
                 f"PGD {_fmt(pgd)} vs FGSM {_fmt(fgsm)} (tolerance {tol} pts)")


def more_steps_do_not_help(acc_double: float, acc_base: float, steps: int, tol: float) -> Check:
    return Check("more_steps_do_not_help", acc_double <= acc_base + tol,
                 f"PGD-{2 * steps} {_fmt(acc_double)} vs PGD-{steps} {_fmt(acc_base)} "
                 f"(tolerance {tol} pts)")


def large_eps_reaches_chance(acc: float, eps_label: str, num_classes: int, tol: float) -> Check:
    chance = 100.0 / num_classes
    return Check("large_eps_reaches_chance", acc <= chance + tol,
                 f"PGD at eps {eps_label}: {_fmt(acc)} vs chance {_fmt(chance)} "
                 f"(tolerance {tol} pts)")


def blackbox_not_stronger(name: str, attack: str, blackbox: float, whitebox: float,
                          tol: float) -> Check:
    return Check(f"{name}_not_stronger_than_whitebox", blackbox >= whitebox - tol,
                 f"{attack} {_fmt(blackbox)} vs white-box worst case {_fmt(whitebox)} "
                 f"(tolerance {tol} pts)")


def verdict(checks: list[Check]) -> tuple[bool, list[str]]:
    """(unreliable, reasons): any failed check makes the robustness numbers unreliable."""
    reasons = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    return bool(reasons), reasons
