"""The record's building blocks, shared by its sections (bench/records/schema.py and
bench/records/deployment.py): strict models, percentages, hashes, latency timings."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

Pct = Annotated[float, Field(ge=0.0, le=100.0)]
Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(Strict):
    batch: PositiveInt
    median_ms: PositiveFloat  # torch.utils.benchmark, blocks of calls
    p50_ms: PositiveFloat  # per-call percentiles
    p90_ms: PositiveFloat
    throughput_ips: PositiveFloat  # examples per second at this batch size
    samples: PositiveInt
    iqr_over_median: NonNegativeFloat


class DeviceTimings(Strict):
    device_name: str
    threads: PositiveInt
    timings: list[Timing] = Field(min_length=1)
