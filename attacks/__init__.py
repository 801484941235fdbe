"""Threats a model is evaluated against: corruptions of the input distribution, adversarial
attacks (torchattacks for FGSM/PGD, the reference AutoAttack), and training-time PGD."""
