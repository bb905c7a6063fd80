"""The Grafana dashboard and the Prometheus alert rules.

promtool accepts the rules and their unit tests; every alert has a case where it fires and
one where it stays quiet, and the firing cases catch a rule that never fires. Every metric
name the dashboard and the rules use is one a real ``understudy serve`` exports on
``/metrics`` once traffic has gone through it, read from the server itself, so the check
keeps telling the truth as metrics are added or renamed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeOpenAI, Fault, ThreadedServer
from tests.faults.serve import REPO, Proxy, start_proxy

DASHBOARD = REPO / "dashboards" / "grafana" / "understudy.json"
RULES = REPO / "dashboards" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "dashboards" / "prometheus" / "alerts_test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian package prometheus; scripts/test.sh installs it)",
)

# Our metric names as PromQL spells them: sample names, suffixes included (_total,
# _bucket, _sum, _count), since that is what Prometheus stores and queries.
METRIC_NAME = re.compile(r"\bunderstudy_[a-z0-9_]*[a-z0-9]\b")
ALERTS = {
    "UnderstudyCandidateErrorRate",
    "UnderstudyFallbackSpike",
    "UnderstudyShadowSkipRate",
    "UnderstudyRecordingDrops",
    "UnderstudySpillGrowing",
    "UnderstudyControllerStalled",
    "UnderstudyFlagsStale",
}
# What each alert must read, so a rule cannot pass by watching something else.
ALERT_METRICS = {
    "UnderstudyCandidateErrorRate": {"understudy_requests_total", "understudy_breaker_state"},
    "UnderstudyFallbackSpike": {"understudy_fallbacks_total", "understudy_requests_total"},
    "UnderstudyShadowSkipRate": {"understudy_shadows_skipped_total", "understudy_requests_total"},
    "UnderstudyRecordingDrops": {"understudy_storage_dropped_total", "understudy_sink_dropped_total"},
    "UnderstudySpillGrowing": {"understudy_storage_spilled_total", "understudy_storage_replayed_total"},
    "UnderstudyControllerStalled": {
        "understudy_rollout_controller_last_run_timestamp_seconds",
        "understudy_rollout_controller_leader",
    },
    "UnderstudyFlagsStale": {"understudy_rollout_flag_staleness_seconds"},
}  # fmt: skip
# The dashboard's rows and what each must show.
DASHBOARD_AREAS = {
    "Traffic": {"understudy_requests_total", "understudy_requests_in_flight"},
    "Latency": {
        "understudy_upstream_latency_seconds_bucket",
        "understudy_upstream_ttft_seconds_bucket",
    },
    "Candidate health": {
        "understudy_shadows_skipped_total",
        "understudy_shadows_failed_total",
        "understudy_fallbacks_total",
        "understudy_breaker_state",
        "understudy_breaker_trips_total",
    },
    "Rollout": {
        "understudy_rollout_percent",
        "understudy_rollout_stage",
        "understudy_rollout_flag_version",
        "understudy_rollout_flag_staleness_seconds",
        "understudy_rollout_killed",
        "understudy_rollout_transitions_total",
        "understudy_rollout_breaker_trips_total",
        "understudy_rollout_controller_leader",
        "understudy_rollout_controller_last_run_timestamp_seconds",
    },
    "Recording": {
        "understudy_sink_queue_depth",
        "understudy_storage_written_total",
        "understudy_storage_dropped_total",
        "understudy_storage_rejected_total",
        "understudy_storage_spilled_total",
        "understudy_storage_replayed_total",
    },
}
SELECTOR = re.compile(r"\b(understudy_[a-z0-9_]*[a-z0-9])\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\bby \(([^)]*)\)\s*\(")
REPLACED = re.compile(r'label_replace\((understudy_\w+)(?:\{[^}]*\})?, "(\w+)"')
SCRAPE_LABELS = {"job", "instance"}
WINDOW = re.compile(r"\[([^\]]*)\]")
PANEL_WINDOWS = {"$__rate_interval", "$__range"}
GRID_WIDTH = 24
SCRAPE_WAIT_S = 30.0


# -- reading the two files ------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def rows_and_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every panel with the title of the row it sits under."""
    row = ""
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
        else:
            yield row, panel


def dashboard_queries() -> list[str]:
    """Every PromQL text: panel targets, annotation queries and variable queries."""
    board = dashboard()
    queries = [t["expr"] for _, panel in rows_and_panels() for t in panel["targets"]]
    queries += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def rule_blocks() -> dict[str, str]:
    """Each alert's text (expression, labels, annotations) by alert name."""
    parts = re.split(r"(?m)^\s*- alert: ", RULES.read_text())[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def metric_names(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def dashboard_metrics() -> set[str]:
    return {name for query in dashboard_queries() for name in metric_names(query)}


def rule_metrics() -> set[str]:
    """Names in the rules' expressions and in what their annotations tell people to look at."""
    return {name for block in rule_blocks().values() for name in metric_names(block)}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# -- the alert rules ------------------------------------------------------------------------


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout, result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in re.split(r"(?m)^\s*- eval_time: ", RULE_TESTS.read_text())[1:]:
        name = re.search(r"alertname: (\w+)", case)
        assert name is not None, case
        if re.search(r"exp_alerts: \[\]", case):
            quiet.add(name.group(1))
        else:
            assert "exp_labels:" in case and "exp_annotations:" in case, case
            firing.add(name.group(1))
    assert firing == ALERTS, f"alerts without a firing case: {ALERTS - firing}"
    assert quiet == ALERTS, f"alerts without a quiet case: {ALERTS - quiet}"


@needs_promtool
def test_the_firing_cases_catch_a_rule_that_never_fires(tmp_path: Path) -> None:
    # Every expression replaced by one that is never true: each alert's firing case fails.
    never = re.sub(
        r"(?m)^(\s+)expr: \|\n(?:\1\s+.*\n)+", r"\1expr: vector(1) < 0\n", RULES.read_text()
    )
    assert never.count("expr: vector(1) < 0") == len(ALERTS)
    (tmp_path / RULES.name).write_text(never)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    caught = set(re.findall(r"alertname: (\w+), time:", result.stdout + result.stderr))
    assert caught == ALERTS, f"not caught: {ALERTS - caught}"


def test_every_rule_waits_carries_a_severity_and_says_what_to_do() -> None:
    blocks = rule_blocks()
    assert set(blocks) == ALERTS
    for name, block in blocks.items():
        assert re.search(r"(?m)^\s+for: \d+m$", block), f"{name}: no for:"
        assert re.search(r"(?m)^\s+severity: (warning|critical)$", block), f"{name}: severity"
        assert re.search(r"(?m)^\s+summary: ", block), f"{name}: no summary"
        description = block.split("description:", 1)
        assert len(description) == 2, f"{name}: no description"
        # What to do: every description names a command, a metric or a setting to look at.
        assert "`" in description[1], f"{name}: the description says nothing to do"


def test_every_alert_reads_the_metrics_of_its_concern() -> None:
    for name, block in rule_blocks().items():
        expr = block.split("for:", 1)[0]
        missing = ALERT_METRICS[name] - metric_names(expr)
        assert not missing, f"{name} does not read {missing}"


# -- the dashboard --------------------------------------------------------------------------


def test_dashboard_is_provisionable_as_is() -> None:
    board = dashboard()
    assert board["uid"] == "understudy"
    assert board["id"] is None  # Grafana gives the id; a fixed one could clash
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids clash"
    for _, panel in rows_and_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert "$job" in target["expr"] and "$instance" in target["expr"], target["expr"]


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= GRID_WIDTH, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_rates_use_grafanas_windows() -> None:
    for _, panel in rows_and_panels():
        for target in panel["targets"]:
            windows = set(WINDOW.findall(target["expr"]))
            assert windows <= PANEL_WINDOWS, f"{panel['title']}: window {windows}"


def test_dashboard_rows_cover_every_area() -> None:
    by_row: dict[str, set[str]] = {}
    for row, panel in rows_and_panels():
        for target in panel["targets"]:
            by_row.setdefault(row, set()).update(metric_names(target["expr"]))
    assert set(by_row) == set(DASHBOARD_AREAS)
    for row, wanted in DASHBOARD_AREAS.items():
        assert wanted <= by_row[row], f"row {row} misses {wanted - by_row[row]}"


# -- against a running server ---------------------------------------------------------------


def exported_samples(proxy: Proxy) -> dict[str, set[str]]:
    """Each of our sample names on ``/metrics`` with the label names its samples carry."""
    with urllib.request.urlopen(f"{proxy.url}/metrics", timeout=5) as response:
        body = response.read().decode()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name.startswith("understudy_"):
                labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def matched_labels() -> dict[str, set[str]]:
    """The label names the dashboard and the rules select or group on, by metric.

    A grouping (``sum by (upstream) (rate(understudy_x[5m]))``) is tied to the first metric
    after it; a label that ``label_replace`` makes counts as the metric's. ``job`` and
    ``instance`` are Prometheus's own, added at scrape time.
    """
    labels: dict[str, set[str]] = {}
    made: dict[str, set[str]] = {}
    for text in [*dashboard_queries(), *rule_blocks().values()]:
        for name, matchers in SELECTOR.findall(text):
            labels.setdefault(name, set()).update(MATCHER.findall(matchers))
        for grouping in GROUPING.finditer(text):
            name = METRIC_NAME.search(text, grouping.end())
            assert name is not None, text
            grouped = {label.strip() for label in grouping.group(1).split(",")}
            labels.setdefault(name.group(0), set()).update(grouped)
        for name, label in REPLACED.findall(text):
            made.setdefault(name, set()).add(label)
    return {name: found - SCRAPE_LABELS - made.get(name, set()) for name, found in labels.items()}


def send_traffic(proxy: Proxy) -> None:
    """Requests from many users on a split with a failing candidate: some go to the
    candidate and fall back, the rest are shadowed and the shadows fail, the breaker
    opens and then skips shadows; one request is refused before any upstream call."""
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    for i in range(24):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"question {i}"}],
            user=f"user-{i}",
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])


@pytest.mark.slow
def test_every_metric_used_is_exported_by_a_running_server(tmp_path: Path) -> None:
    used = dashboard_metrics() | rule_metrics()
    for wanted in DASHBOARD_AREAS.values():
        assert wanted <= used
    primary = FakeOpenAI(persona="openai")
    candidate = FakeOpenAI(persona="candidate")
    candidate.fault = Fault.HTTP_500
    with ThreadedServer(primary.app) as primary_server, ThreadedServer(candidate.app) as cand:
        proxy = start_proxy(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}",
            (primary_server.url + "/v1", cand.url + "/v1"),
            env={
                "UNDERSTUDY_ROLLOUT__MODE": "split",
                "UNDERSTUDY_ROLLOUT__PERCENT": "50",
                "UNDERSTUDY_ROLLOUT__CONTROLLER__INTERVAL_S": "0.5",
            },
        )
        try:
            send_traffic(proxy)
            # Shadows, the writer and the controller report in the background.
            deadline = time.monotonic() + SCRAPE_WAIT_S
            exported = exported_samples(proxy)
            while used - exported.keys() and time.monotonic() < deadline:
                time.sleep(0.2)
                exported = exported_samples(proxy)
        finally:
            exit_code = proxy.terminate()
    assert exit_code == 0, proxy.log.read_text()[-3000:]
    assert not used - exported.keys(), (
        f"used but not exported: {sorted(used - exported.keys())}; exported: {sorted(exported)}"
    )
    matched = matched_labels()
    assert matched["understudy_upstream_latency_seconds_bucket"] == {"le", "upstream", "arm"}
    for name, labels in matched.items():
        assert labels <= exported[name], f"{name} has no label {labels - exported[name]}"
