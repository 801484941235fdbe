"""Gradient-masking sanity checks (Carlini et al. 2019, "On Evaluating Adversarial Robustness";
Athalye, Carlini & Wagner 2018, "Obfuscated Gradients Give a False Sense of Security").

A model whose robustness comes from masked gradients, or an evaluation whose attack has not
converged, fails at least one of these:

- PGD is not weaker than FGSM (an iterative attack that is weaker than one step is broken);
- doubling the iterations does not increase the attack's success: run with twice the iterations
  on the examples the evaluated attacks left robust, it fools (almost) none of them;
- accuracy decreases as eps grows (the accuracy-vs-eps curve is monotone);
- at a large radius accuracy falls to chance (any image can be moved to any other);
- black-box attacks (transfer from the teacher, Square) fool (almost) none of the examples the
  white-box attacks left robust;
- the reference AutoAttack's own checks (pyautoattack's checks.py: randomised or dynamic
  defence, probabilities instead of logits, zero gradients, Square beating the gradient attacks),
  when AutoAttack runs.

Counts are percentages of the examples checked; differences within `tolerance` percentage points
count as noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


def more_steps_do_not_help(extra_fooled: float, attack: str, robust: float, tol: float) -> Check:
    """`extra_fooled`: the % of checked examples that `attack` (the evaluated attacks at twice
    their iterations) fools among those the evaluated attacks left robust (`robust` %)."""
    return Check("more_steps_do_not_help", extra_fooled <= tol,
                 f"{attack} fools {_fmt(extra_fooled)} more of the examples (robust under the "
                 f"evaluated attacks: {_fmt(robust)}) (tolerance {tol} pts)")


def eps_curve_is_monotone(points: Sequence[tuple[str, float]], tol: float) -> Check:
    """Accuracy must not rise by more than `tol` from one radius to the next larger one."""
    rises = [(a, b, acc_b - acc_a) for (a, acc_a), (b, acc_b) in zip(points, points[1:])
             if acc_b > acc_a + tol]
    curve = ", ".join(f"{label}: {_fmt(acc)}" for label, acc in points)
    detail = f"accuracy vs eps {curve} (tolerance {tol} pts)"
    if rises:
        a, b, d = max(rises, key=lambda r: r[2])
        detail = f"accuracy rises by {d:.1f} pts from eps {a} to {b}; {detail}"
    return Check("accuracy_decreases_with_eps", not rises, detail)


def large_eps_reaches_chance(acc: float, eps_label: str, num_classes: int, tol: float) -> Check:
    chance = 100.0 / num_classes
    return Check("large_eps_reaches_chance", acc <= chance + tol,
                 f"PGD at eps {eps_label}: {_fmt(acc)} vs chance {_fmt(chance)} "
                 f"(tolerance {tol} pts)")


def blackbox_not_stronger(name: str, attack: str, extra_fooled: float, whitebox: float,
                          tol: float) -> Check:
    """`extra_fooled`: the % of checked examples the black-box attack fools among those the
    white-box attacks left robust (`whitebox` %)."""
    return Check(f"{name}_not_stronger_than_whitebox", extra_fooled <= tol,
                 f"{attack} fools {_fmt(extra_fooled)} of the examples the white-box attacks "
                 f"left robust ({_fmt(whitebox)}) (tolerance {tol} pts)")


# pyautoattack's warnings (checks.py), by the words that identify each.
AUTOATTACK_FLAGS = {
    "randomized defense": "autoattack_deterministic_model",
    "probability distribution": "autoattack_logits_not_probabilities",
    "zero gradient": "autoattack_no_zero_gradients",
    "Square Attack has decreased": "autoattack_square_not_stronger",
    "dynamic defense": "autoattack_static_model",
    "target classes": "autoattack_target_classes",
    "DLR loss": "autoattack_dlr_applicable",
}


def from_autoattack(warnings: Sequence[str]) -> list[Check]:
    """One check per kind of pyautoattack warning: failed when it warned, passed otherwise."""
    out = []
    for words, name in AUTOATTACK_FLAGS.items():
        said = [w for w in warnings if words.lower() in w.lower()]
        detail = (re.sub(r"\s+See flags_doc\.md for details\.?", "", said[0]) if said
                  else "pyautoattack raised no such flag")
        out.append(Check(name, not said, detail))
    return out


def verdict(checks: list[Check]) -> tuple[bool, list[str]]:
    """(unreliable, reasons): any failed check makes the robustness numbers unreliable."""
    reasons = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    return bool(reasons), reasons
