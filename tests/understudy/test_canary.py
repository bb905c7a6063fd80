"""The canary sweep: a distinct fake key in every place a key can travel, none in any sink.

The real ``understudy serve`` runs in shadow mode on SQLite with a spill folder and an
operator key; ``canary_traffic`` sends the canaries. Then every place the product writes
to is searched for every canary (and its base64, URL-encoded and partial forms): the
process's log, every table and the raw database files, spill and rejected files, the ops
endpoints, every response (headers and body) returned to a client, and the CLI's output.
The sweep proves it could find one: the upstreams received the keys they should, and the
recorded requests carry the redaction mark where the keys were.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families

import migrations
from storage.redaction import SECRET_MARK
from tests.fakes import ThreadedServer
from tests.faults.checks import assert_log_is_json
from tests.faults.serve import REPO, start_proxy
from tests.understudy.canary_traffic import (
    ANSWERED_BACK,
    CANDIDATE_ONLY_ECHO,
    ECHO_STATUS,
    EchoingOpenAI,
    Responses,
    chat_on,
    new_canaries,
    received,
    send_everything,
)
from understudy.settings import load_settings
from understudy.upstream_keys import secret_redactor

PRIMARY_TIMEOUT_S = 3
CANDIDATE_TIMEOUT_S = 2
STORE_WAIT_S = 30.0
# The database refuses one exchange (a constraint error: kept in a rejected file), then
# cannot take any (an error SQLite reports like an outage: spilled, replayed once dropped).
REJECT_ONE = (
    "CREATE TRIGGER canary_reject_one BEFORE INSERT ON exchanges "
    "WHEN NEW.requested_model = 'reject-me' BEGIN SELECT RAISE(ABORT, 'refused'); END"
)
FAIL_ALL = (
    "CREATE TRIGGER canary_fail_all BEFORE INSERT ON exchanges "
    "BEGIN INSERT INTO no_such_table VALUES (1); END"
)
# Request fields and headers, answer text, tool calls, an upstream error's answer.
SHOWN = ("main", "answer_echo", "tool_schema", "echo_401")
OPS_PATHS = ("/metrics", "/healthz", "/readyz")
CLI_WORKERS = 4  # CLI runs at once: each mostly waits on its imports


def forms(canary: str) -> dict[str, bytes]:
    """How a leaked canary may look: as is, encoded, or cut (a part that survived masking)."""
    raw = canary.encode()
    found: dict[str, bytes] = {}
    for form, needle in (
        ("raw", raw),
        ("base64", base64.b64encode(raw)),
        ("base64url", base64.urlsafe_b64encode(raw)),
        ("url", quote(canary, safe="").encode()),
        ("part", raw[14:38]),
    ):
        if needle not in found.values():  # one name per distinct form
            found[form] = needle
    return found


def hits(
    sinks: Mapping[str, bytes], canaries: Mapping[str, str], allowed: frozenset[str] = frozenset()
) -> list[str]:
    """``sink: place (form)`` for each canary found; ``allowed`` holds ``sink: place`` pairs."""
    return [
        f"{sink}: {place} ({form})"
        for sink, data in sinks.items()
        for place, canary in canaries.items()
        if f"{sink}: {place}" not in allowed
        for form, needle in forms(canary).items()
        if needle in data
    ]


# -- the sinks ---------------------------------------------------------------------------


def database_dump(db: Path) -> bytes:
    """Every value of every table as text or bytes, then the raw database files."""
    parts: list[bytes] = []
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                parts += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    conn.close()
    parts += [p.read_bytes() for p in db.parent.glob(db.name + "*")]
    return b"\n".join(parts)


def run_sql(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def files_under(directory: Path, prefix: str) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(directory.rglob(f"{prefix}*")))


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def metric_values(exposition: bytes) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def cli(env: Mapping[str, str], *args: str) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "understudy.cli", *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout + done.stderr


def stored_requests(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, request FROM exchanges").fetchall()
    conn.close()
    return {str(i).replace("-", ""): str(r) for i, r in rows}


def wait_for(check: Callable[[], object], what: str, timeout_s: float = STORE_WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout_s:g} s for {what}"
        time.sleep(0.2)


# -- the sweep ---------------------------------------------------------------------------


@pytest.fixture
def canaries() -> dict[str, str]:
    return new_canaries()


@pytest.fixture
def upstreams() -> Iterator[tuple[EchoingOpenAI, EchoingOpenAI, tuple[str, str]]]:
    primary = EchoingOpenAI("openai", ECHO_STATUS, "primary-hang")
    candidate = EchoingOpenAI("candidate", {**ECHO_STATUS, **CANDIDATE_ONLY_ECHO}, "candidate-hang")
    with ThreadedServer(primary.app) as p, ThreadedServer(candidate.app) as c:
        yield primary, candidate, (f"{p.url}/v1", f"{c.url}/v1")


def test_the_sweep_finds_a_planted_canary(canaries: dict[str, str]) -> None:
    """A canary in any searched form is found, and names its place and form."""
    prompt = canaries["prompt"]
    planted = {
        "log": b'{"event": "x", "v": "' + base64.b64encode(prompt.encode()) + b'"}',
        "db": b"key=" + prompt[8:44].encode(),
    }
    found = hits(planted, canaries)
    assert "log: prompt (base64)" in found and "db: prompt (part)" in found
    assert all(": prompt (" in hit for hit in found)
    assert hits(planted, canaries, frozenset({"log: prompt", "db: prompt"})) == []
    assert hits({"clean": SECRET_MARK.encode()}, canaries) == []


def test_configured_keys_are_masked_whatever_their_shape() -> None:
    """Longest first, so a key holding another is masked whole; very short ones are not."""
    operator, candidate = "0123456789abcdef", "0123456789abcdef-longer"
    settings = load_settings(
        primary={"api_key": operator},
        candidates=[
            {"name": "a", "base_url": "http://127.0.0.1:1/v1", "api_key": candidate},
            {"name": "b", "base_url": "http://127.0.0.1:2/v1", "api_key": "short"},
        ],
    )
    redact = secret_redactor(settings)
    text = f"bad key {operator}; also {candidate}, short, Bearer sk-abcdefghijkl"
    assert redact(text) == f"bad key {SECRET_MARK}; also {SECRET_MARK}, short, {SECRET_MARK}"


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_no_canary_reaches_any_sink(
    tmp_path: Path,
    canaries: dict[str, str],
    upstreams: tuple[EchoingOpenAI, EchoingOpenAI, tuple[str, str]],
) -> None:
    primary, candidate, urls = upstreams
    db = tmp_path / "understudy.db"
    env = {"UNDERSTUDY_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    await migrations.upgrade(env["UNDERSTUDY_DATABASE_URL"])
    settings = {
        "UNDERSTUDY_PRIMARY__API_KEY": canaries["operator"],
        "UNDERSTUDY_PRIMARY__TIMEOUT_S": str(PRIMARY_TIMEOUT_S),
        "UNDERSTUDY_CANDIDATES": json.dumps(
            [
                {
                    "name": "local",
                    "base_url": urls[1],
                    "api_key": canaries["candidate_key"],
                    "timeout_s": CANDIDATE_TIMEOUT_S,
                }
            ]
        ),
    }
    proxy = await asyncio.to_thread(
        start_proxy, tmp_path, env["UNDERSTUDY_DATABASE_URL"], urls, env=settings, log_level="debug"
    )
    responses = Responses()
    spill_dir = tmp_path / "spill"
    try:
        await send_everything(proxy.url, canaries, responses)
        recorded = set(responses.exchange_ids.values())
        await asyncio.to_thread(
            wait_for, lambda: recorded <= set(stored_requests(db)), "the exchanges to be stored"
        )
        # The database refuses one exchange (set aside in a rejected file), then cannot take
        # any (spilled), then recovers (replayed).
        run_sql(db, REJECT_ONE)
        await asyncio.to_thread(chat_on, proxy, "reject-me", canaries["rejected"])
        await asyncio.to_thread(
            wait_for, lambda: files_under(spill_dir, "rejected-"), "a rejected file"
        )
        run_sql(db, FAIL_ALL)
        spilled_id = await asyncio.to_thread(chat_on, proxy, "gpt-4o-mini", canaries["spilled"])
        await asyncio.to_thread(wait_for, lambda: files_under(spill_dir, "spill-"), "a spill file")
        spilled = files_under(spill_dir, "spill-")
        rejected = files_under(spill_dir, "rejected-")
        run_sql(db, "DROP TRIGGER canary_fail_all", "DROP TRIGGER canary_reject_one")
        await asyncio.to_thread(
            wait_for, lambda: spilled_id in stored_requests(db), "the spill to be replayed"
        )
        metrics, health, ready = await asyncio.gather(
            *(asyncio.to_thread(fetch, f"{proxy.url}{path}") for path in OPS_PATHS)
        )
    finally:
        exit_code = await asyncio.to_thread(proxy.terminate)
    assert exit_code == 0
    assert_log_is_json(proxy)

    stored = stored_requests(db)
    # ``show`` renders what the JSON list holds (the JSON of ``show`` adds judgments, there
    # are none): shown for the exchanges holding the most kinds of recorded text.
    shown = {label: responses.exchange_ids[label] for label in SHOWN}
    commands = {
        "cli list": ("exchanges", "list", "--format", "json", "--limit", "1000"),
        "cli report": ("report",),
        "cli report json": ("report", "--format", "json"),
        "cli show main json": ("exchanges", "show", shown["main"], "--format", "json"),
        "cli show spilled": ("exchanges", "show", spilled_id),
        **{f"cli show {label}": ("exchanges", "show", i) for label, i in shown.items()},
    }
    with ThreadPoolExecutor(CLI_WORKERS) as pool:
        outputs = dict(
            zip(commands, pool.map(lambda a: cli(env, *a), commands.values()), strict=True)
        )
    sinks = {
        "log": proxy.log.read_bytes(),
        "database": database_dump(db),
        "spill file": spilled,
        "rejected file": rejected,
        "spill dir now": files_under(spill_dir, ""),
        "metrics": metrics,
        "healthz": health,
        "readyz": ready,
        **{f"response {label}": body for label, body in responses.seen.items()},
        **outputs,
    }
    # What the primary answered back is the client's: only that response may carry it.
    allowed = frozenset(f"response {place}: {place}" for place in ANSWERED_BACK)
    found = hits(sinks, canaries, allowed)
    assert found == [], "canaries leaked:\n" + "\n".join(found)

    # The sweep is not vacuous: every key went where it should, and recordings hold the mark.
    sent_to_primary = received(primary)
    forwarded = ("operator", "prompt", "system", "organization", "project", "passthrough_query")
    plain = ("plain_organization", "plain_project", "plain_password", "plain_deep_secret")
    for place in (*forwarded, *plain, "deep_stored"):
        assert canaries[place].encode() in sent_to_primary, place
    assert f"Bearer {canaries['operator']}".encode() in sent_to_primary
    assert canaries["bearer"].encode() not in sent_to_primary  # replaced by the operator's
    assert f"Bearer {canaries['candidate_key']}".encode() in received(candidate)
    for label in ("echo_401", "echo_500", "passthrough_path"):  # echoed, then masked
        assert SECRET_MARK.encode() in responses.seen[label], label
    for place in ANSWERED_BACK:
        assert canaries[place].encode() in responses.seen[place]
    assert len(stored) == len(recorded) + 1  # the spilled one replayed; the rejected not
    unmarked = [i for i, request in stored.items() if SECRET_MARK not in request]
    # Every recorded request but the plain client's held a key in its body.
    assert unmarked == [responses.exchange_ids["plain_chat"]]
    main = json.loads(stored[responses.exchange_ids["main"]])
    assert main["password"] == SECRET_MARK  # masked by its name: the value has no shape
    assert json.dumps(main["deep"]).count(SECRET_MARK) == 2  # kept as JSON text, masked
    assert SECRET_MARK.encode() in spilled and SECRET_MARK.encode() in rejected
    counted = metric_values(metrics)
    assert counted["understudy_storage_spilled_total"] >= 1
    assert counted["understudy_storage_rejected_total"] == 1
    assert all(outputs.values())
