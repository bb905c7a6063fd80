"""Settings for recording exchanges: what is stored, where spills go, how long records live."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from storage.privacy import PrivacyPolicy
from storage.timespec import parse_duration

RedactPattern = Literal["email", "phone", "card"]
DEFAULT_REDACT: tuple[RedactPattern, ...] = ("email", "card")


class StorageSettings(BaseModel):
    """``UNDERSTUDY_STORAGE__*``. API keys and bearer tokens are always redacted."""

    model_config = {"extra": "forbid"}

    enabled: bool = True  # False: record nothing (exchanges are only counted)
    store_prompts: bool = True  # False keeps the request's parameters, not its messages
    store_responses: bool = True  # False keeps status, timings and tokens, not the text
    # Phone numbers are opt-in: the pattern also matches long numbers in ordinary text.
    redact: list[RedactPattern] = Field(default_factory=lambda: list(DEFAULT_REDACT))
    spill_dir: Path = Path("understudy-spill")
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=256, ge=1, le=10_000)
    linger_s: float = Field(default=0.2, ge=0, le=10)  # how long a partial batch may wait
    # "process": `understudy serve` records in a process of its own beside the proxy,
    # which hands exchanges over a local socket; "inline": in the proxy's own process.
    recorder: Literal["process", "inline"] = "process"
    retention: timedelta | None = None  # e.g. "30d"; None keeps records until purged

    @field_validator("retention", mode="before")
    @classmethod
    def _duration_text(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() and not value.strip().upper().startswith("P"):
            return parse_duration(value)
        return value

    def privacy_policy(self) -> PrivacyPolicy:
        return PrivacyPolicy.create(
            store_prompts=self.store_prompts,
            store_responses=self.store_responses,
            redact=self.redact,
        )
