"""Understudy's vocabulary: plain frozen values and Protocols, no I/O."""

from core.errors import ConfigError, UnderstudyError, UpstreamError
from core.exchange import ErrorKind, Exchange, Observation, Role, Route, ToolCall, Usage
from core.guardrail import GuardrailTrip, TripCause, TripReporter
from core.ports import ExchangeSink, FlagSource, Upstream, UpstreamRequest, UpstreamResponse
from core.routing import FlagState, RolloutMode, RoutingDecision
from core.verdict import Decision, Direction, MetricLabel, MetricResult, Verdict

__all__ = [
    "ConfigError",
    "Decision",
    "Direction",
    "ErrorKind",
    "Exchange",
    "ExchangeSink",
    "FlagSource",
    "FlagState",
    "GuardrailTrip",
    "MetricLabel",
    "MetricResult",
    "Observation",
    "Role",
    "RolloutMode",
    "Route",
    "RoutingDecision",
    "ToolCall",
    "TripCause",
    "TripReporter",
    "UnderstudyError",
    "Upstream",
    "UpstreamError",
    "UpstreamRequest",
    "UpstreamResponse",
    "Usage",
    "Verdict",
]
