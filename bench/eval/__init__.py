"""Evaluation: the suite every trained model goes through (`suite`: clean accuracy, attacks,
the accuracy-vs-eps curve, gradient-masking checks, corruptions) and its size and speed
(`efficiency`)."""
