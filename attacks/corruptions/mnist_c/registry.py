"""MNIST-C's registry: its own names (several are CIFAR-10-C's with other meanings), one severity,
grey images only."""

from __future__ import annotations

from attacks.corruptions.base import Corruption, registrar

CORRUPTIONS: dict[str, Corruption] = {}

corruption = registrar(CORRUPTIONS, severities=1, channels=(1,), suite="MNIST-C")
