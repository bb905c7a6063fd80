"""All configuration, from ``UNDERSTUDY_*`` environment variables or a TOML file."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core import ConfigError, RolloutMode
from core.upstream_kind import UpstreamKind
from proxy.responses.modes import ResponsesMode
from understudy.admin_settings import admin_tokens_by_name
from understudy.breaker_settings import BreakerSettings
from understudy.evaluation_settings import EvaluationSettings
from understudy.plan_settings import (
    ControllerSettings,
    StageSettings,
    default_stage_settings,
    gates_not_measured,
    stage_plan,
)
from understudy.storage_settings import StorageSettings
from understudy.ui_settings import UiSettings


def _check_base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


class PrimarySettings(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = "openai"
    base_url: str = "https://api.openai.com/v1"
    api_key: SecretStr | None = None  # unset: forward the client's own Authorization
    timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    # A stream that sends nothing for this long is cut and recorded as incomplete.
    stream_idle_timeout_s: float = Field(default=300.0, gt=0)
    max_connections: int = Field(default=512, ge=1)  # the served pool; noise has its own
    # A pooled connection unused this long is closed.
    idle_connection_timeout_s: float = Field(default=30.0, gt=0)

    _url = field_validator("base_url")(_check_base_url)


class CandidateSettings(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    base_url: str
    kind: UpstreamKind = UpstreamKind.OPENAI
    api_key: SecretStr | None = None
    model_map: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)
    stream_idle_timeout_s: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=64, ge=1)
    # A pooled connection unused this long is closed: below the 5 s after which vLLM and
    # llama.cpp's server close an idle connection themselves, so a call never picks one
    # they are closing.
    idle_connection_timeout_s: float = Field(default=4.0, gt=0)
    # Health probes this often (openai: GET /v1/models; vllm: /health and /v1/models; tgi
    # and llamacpp: /health; ollama: /api/tags), each mapped model checked where the
    # server lists them; unset: no probes. An unhealthy candidate gets no shadows and
    # serves no one until a probe passes. A mapped model missing at start-up stops
    # `serve` when the rollout serves users from the candidate, and is a warning otherwise.
    probe_interval_s: float | None = Field(default=None, gt=0)
    probe_timeout_s: float = Field(default=5.0, gt=0)  # probes and metric scrapes alike
    # Read the server's own Prometheus metrics (vLLM, TGI, llama.cpp run with --metrics),
    # re-export them, and skip shadows while more than shed_shadows_above_queue requests
    # wait in its queue. metrics_url defaults to /metrics at the server's root.
    scrape_metrics: bool = False
    metrics_url: str | None = None
    scrape_interval_s: float = Field(default=1.0, gt=0)
    shed_shadows_above_queue: int = Field(default=0, ge=0)
    # How the Responses API reaches it: "native" (it serves /v1/responses) or "translate"
    # (to and from Chat Completions). Unset: native for openai and vllm, else translate.
    responses: ResponsesMode | None = None
    # Ollama only. keep_alive: how long the model stays loaded after a call (a duration
    # such as "10m", or seconds; -1 keeps it loaded). think: true, false or a level, sent
    # when a request sets neither `think` nor `reasoning_effort`. Unset: Ollama's defaults.
    keep_alive: str | int | None = None
    think: bool | Literal["low", "medium", "high"] | None = None
    # A self-hosted candidate's cost, which no list price gives: what one GPU costs per
    # hour, the output tokens per second one replica serves at saturation (all concurrent
    # requests together, e.g. from a load test), and the GPUs per replica. Set both or
    # neither; they price the candidate in `report`, the controller's and the admin API's
    # reports and the web UI's overview (`report --gpu-usd-per-hour` overrides them).
    gpu_usd_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    output_tokens_per_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    gpus: int = Field(default=1, ge=1)

    _url = field_validator("base_url")(_check_base_url)

    @field_validator("metrics_url")
    @classmethod
    def _metrics_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_base_url(value)

    @model_validator(mode="after")
    def _metrics_exist(self) -> Self:
        if self.scrape_metrics and self.kind is UpstreamKind.OLLAMA and self.metrics_url is None:
            raise ValueError(
                "Ollama exports no Prometheus metrics: set metrics_url or turn off scrape_metrics"
            )
        return self

    @model_validator(mode="after")
    def _ollama_responses(self) -> Self:
        if self.kind is UpstreamKind.OLLAMA and self.responses is ResponsesMode.NATIVE:
            raise ValueError(
                "Ollama's API has no /v1/responses here: its Responses requests are always "
                "translated; leave responses unset or set it to translate"
            )
        return self

    @model_validator(mode="after")
    def _ollama_options(self) -> Self:
        if self.kind is not UpstreamKind.OLLAMA and (
            self.keep_alive is not None or self.think is not None
        ):
            raise ValueError("keep_alive and think are Ollama options: set them on kind ollama")
        return self

    @model_validator(mode="after")
    def _gpu_cost_whole(self) -> Self:
        if (self.gpu_usd_per_hour is None) != (self.output_tokens_per_s is None):
            raise ValueError(
                "gpu_usd_per_hour and output_tokens_per_s go together: set both to price "
                "a self-hosted candidate, or neither"
            )
        if self.gpu_usd_per_hour is None and self.gpus != 1:
            raise ValueError(
                "gpus counts toward the GPU cost: set gpu_usd_per_hour and output_tokens_per_s too"
            )
        return self

    def mapped_model(self, requested: str) -> str:
        return self.model_map.get(requested, requested)


class ShadowCandidateSettings(BaseModel):
    """A candidate mirrored beside the rollout's own on ``rate`` of primary-served requests."""

    model_config = {"extra": "forbid"}

    name: str
    rate: float = Field(default=1.0, ge=0, le=1)


class RolloutSettings(BaseModel):
    model_config = {"extra": "forbid"}

    mode: RolloutMode = RolloutMode.OFF
    candidate: str | None = None
    percent: float = Field(default=0.0, ge=0, le=100)
    shadow_rate: float = Field(default=1.0, ge=0, le=1)
    # Candidate-served requests (split and cutover) also sent to the primary in the
    # background: the comparison goes on after cutover, for the price of this share.
    reverse_shadow_rate: float = Field(default=0.05, ge=0, le=1)
    # Further candidates, each mirrored on its own share of the requests the primary
    # serves; only watched and compared, never served (settings only, not the flag store).
    shadow_candidates: list[ShadowCandidateSettings] = Field(default_factory=list)
    flag_key: str = "default"
    # With a database, the values above only seed an empty flag store; after that the
    # store (`understudy rollout ...`) is the rollout. How often replicas look at it:
    poll_interval_s: float = Field(default=0.25, gt=0, le=1)
    # Embeddings stay in shadow unless every index is rebuilt with the candidate's vectors.
    allow_embeddings_split: bool = False
    plan: list[StageSettings] = Field(default_factory=default_stage_settings)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)

    @model_validator(mode="after")
    def _plan_is_valid(self) -> Self:
        try:
            stage_plan(self.plan)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


class LimitAction(StrEnum):
    CLAMP = "clamp"
    REJECT = "reject"


class LimitSettings(BaseModel):
    model_config = {"extra": "forbid"}

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_n: int = Field(default=8, ge=1)
    max_tokens: int = Field(default=32768, ge=1)
    on_exceed: LimitAction = LimitAction.CLAMP
    max_recorded_chars: int = Field(default=200_000, ge=1000)
    max_header_bytes: int = Field(default=16384, ge=1024)  # one header line; over it: 431
    max_headers: int = Field(default=100, ge=8)  # header count; over it: 431
    header_timeout_s: float = Field(default=10.0, gt=0)  # to receive a request's headers
    body_timeout_s: float = Field(default=60.0, gt=0)  # to receive a request's body
    max_json_depth: int = Field(default=64, ge=4)
    # In-flight client requests; over it: 503 with Retry-After. Shadows stop first,
    # from shed_shadows_at (a fraction of max_concurrent_requests).
    max_concurrent_requests: int = Field(default=1024, ge=1)
    shed_shadows_at: float = Field(default=0.75, gt=0, le=1)


class LogFormat(StrEnum):
    AUTO = "auto"  # JSON when stderr is not a terminal
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="UNDERSTUDY_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    primary: PrimarySettings = Field(default_factory=PrimarySettings)
    candidates: list[CandidateSettings] = Field(default_factory=list)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    noise_rate: float = Field(default=0.0, ge=0, le=1)
    database_url: str = "sqlite+aiosqlite:///understudy.db"
    # The admin API (/admin/api/v1/): off unless a token is set. ADMIN_TOKEN acts as
    # "admin" in the audit log; ADMIN_TOKENS names each person's token (JSON name -> token).
    admin_token: SecretStr | None = None
    admin_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    # Serve the admin API on this port only, not on the port apps talk to.
    admin_port: int | None = Field(default=None, ge=0, le=65535)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    # While this file exists every request goes to the primary alone, on every replica.
    kill_file: Path | None = None
    limits: LimitSettings = Field(default_factory=LimitSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    log_level: str = "info"
    log_format: LogFormat = LogFormat.AUTO
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    ui: UiSettings = Field(default_factory=UiSettings)

    @model_validator(mode="after")
    def _gates_are_measured(self) -> Self:
        if problem := gates_not_measured(self.rollout.plan, self.evaluation):
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _rollout_names_a_candidate(self) -> Self:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError("candidate names must be unique")
        if self.primary.name in names:
            raise ValueError("a candidate may not share the primary's name")
        wanted = self.rollout.candidate
        if wanted is not None and wanted not in names:
            raise ValueError(f"rollout.candidate {wanted!r} is not among the configured candidates")
        if self.rollout.mode is not RolloutMode.OFF and wanted is None:
            if len(names) != 1:
                raise ValueError(
                    "rollout.mode needs rollout.candidate when there is not exactly one candidate"
                )
            self.rollout.candidate = names[0]
        listed = [c.name for c in self.rollout.shadow_candidates]
        if len(set(listed)) != len(listed):
            raise ValueError("rollout.shadow_candidates names a candidate twice")
        if unknown := [n for n in listed if n not in names]:
            raise ValueError(
                f"rollout.shadow_candidates: {unknown[0]!r} is not among the configured candidates"
            )
        return self

    @model_validator(mode="after")
    def _admin_tokens_usable(self) -> Self:
        admin_tokens_by_name(self.admin_token, self.admin_tokens)
        return self

    def admin_token_names(self) -> dict[str, str]:
        """Every admin token by the name the audit log gives its holder; empty: API off."""
        return admin_tokens_by_name(self.admin_token, self.admin_tokens)

    def candidate(self, name: str) -> CandidateSettings:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(name)

    # Precedence: explicit arguments, then environment, then the TOML file.
    toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)


def _setting_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-after")]
    if not parts:
        return "UNDERSTUDY settings"
    return "UNDERSTUDY_" + "__".join(parts).upper()


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings, or raise ConfigError naming the first bad setting (values never shown)."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError("--config", f"no such file: {config_file}")

    class _Loaded(Settings):
        toml_file = config_file

    try:
        loaded = _Loaded(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise ConfigError(_setting_name(first["loc"]), first["msg"]) from None
    except ValueError as exc:  # malformed JSON in a complex env value, bad TOML
        field = re.search(r'field "(\w+)"', str(exc))
        if field is None:
            raise ConfigError("UNDERSTUDY settings", str(exc).splitlines()[0]) from None
        name = _setting_name((field.group(1),))
        raise ConfigError(name, "not valid JSON or not a valid value") from None
    return Settings.model_validate(loaded.model_dump())
