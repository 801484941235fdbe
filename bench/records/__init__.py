"""Result records, torch-free: what the leaderboard may import.

    from bench.records import Record, read_record, find_records

`schema` (the pydantic models), `layout` (where files live; atomic read and write), `validate`
(checks beyond the schema), `submission` (leaderboard entries) and `aggregate` (mean/std over
seeds and mCE, defined once).
"""

from bench.errors import RecordError
from bench.records.layout import (atomic_write_text, checkpoint_path, entry_path, find_entries,
                                  find_records, read_record, record_path, write_record)
from bench.records.deployment import DeployAcc, Deployment
from bench.records.schema import (READABLE_VERSIONS, SCHEMA_VERSION, CheckpointRef,
                                  DeviceTimings, Efficiency, Metrics, Provenance, Record, Sha,
                                  Strict, Training, Verification)

__all__ = ["READABLE_VERSIONS", "SCHEMA_VERSION", "CheckpointRef", "DeployAcc", "Deployment",
           "DeviceTimings", "Efficiency",
           "Metrics", "Provenance", "Record", "RecordError", "Sha", "Strict", "Training",
           "Verification", "atomic_write_text", "checkpoint_path", "entry_path", "find_entries",
           "find_records", "read_record", "record_path", "write_record"]
