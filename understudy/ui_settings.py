"""``UNDERSTUDY_UI__*``: the web UI's accounts, sessions and blind review."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from core.outcome import QualitySource


class UiSettings(BaseModel):
    model_config = {"extra": "forbid"}

    # At most this many people review one pair; then it leaves every queue.
    reviewers_per_pair: int = Field(default=3, ge=1, le=50)
    # Whose preference counts in the quality metric for a pair rated by both.
    quality_source: QualitySource = QualitySource.REVIEWERS
    session_lifetime_s: float = Field(default=12 * 3600.0, ge=60)
    invite_lifetime_s: float = Field(default=7 * 86400.0, ge=60)
    # Sign-in attempts (admin token, password, invite) per client address per minute.
    signin_attempts_per_minute: int = Field(default=10, ge=1)
    # Secure cookies: on when public_url is https; set true behind a TLS-terminating proxy.
    secure_cookies: bool = False
    # The address people open, e.g. https://understudy.example.com; used for invite links
    # and as the only Origin a state-changing request may come from. Unset: the admin
    # listener's own address.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _origin_like(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def cookies_secure(self) -> bool:
        return self.secure_cookies or (self.public_url or "").startswith("https://")
