"""The harness version: part of every job's identity (lm-evaluation-harness's per-task `version`).

A record names the protocol (its hash), the method's code (the sha256 of every project file the
method imports) and this number, which stands for everything else that makes a result: the
training engine, the evaluation suite and the record's meaning. Bump it in the same commit as any
change to how jobs are trained or evaluated; every existing record then reads as stale, with the
reason, and the benchmark reruns it.

History:
1. Records of schema 1 (no version recorded).
2. One job identity (JobSpec): the teacher a student learns from, the student architecture's
   code and every module a method imports are part of a job's key.
3. Per-example evidence (schema 3), the class-balanced test order, the protocol's stronger
   attacks behind robust_acc, held-out corruptions, and the deployed model (ONNX fp32 / int8).
"""

HARNESS_VERSION = 3
