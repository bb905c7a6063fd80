"""Settings of each candidate's circuit breaker (``UNDERSTUDY_BREAKER__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BreakerSettings(BaseModel):
    """When the proxy stops using a failing candidate, and when it tries it again."""

    model_config = {"extra": "forbid"}

    enabled: bool = True
    consecutive_failures: int = Field(default=5, ge=1)  # failed calls in a row that open it
    window_s: float = Field(default=30.0, gt=0)  # the sliding window of the error rate
    min_calls: int = Field(default=20, ge=1)  # fewer calls in the window: rate not judged
    error_rate: float = Field(default=0.5, gt=0, le=1)  # failed share that opens it
    cooldown_s: float = Field(default=30.0, gt=0)  # open this long, then one probe call
