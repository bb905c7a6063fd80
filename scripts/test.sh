#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, from the hash-pinned lock,
# audits those pins for known vulnerabilities, then runs lint, type checks and the
# whole test suite (slow tier included). Extra arguments go to pytest.
#
# UNDERSTUDY_REQUIRE_AUDIT=1 makes an unreachable vulnerability service fatal;
# by default it is reported loudly and the run goes on (this machine's network
# reaches package registries only, not every vulnerability database).
set -euo pipefail
cd "$(dirname "$0")/.."

pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore "$@"
}

# Every dependency at the locked version, each file checked against its sha256;
# then the project itself, with nothing more resolved and no build tools fetched.
pip_install --require-hashes -r requirements.lock
pip_install --no-deps --no-build-isolation -e .

# The real model the end-to-end tests serve: llama-cpp-python compiles from source (6-11
# minutes on 2 cores; pip's wheel cache makes later runs fast), in the background while
# the Debian packages, lint and type checks run; the tests wait for it. Built portably:
# these CPUs advertise AVX-512 and AMX, and a native build dies with "Illegal
# instruction" on the first token. --no-deps: the lock lists every dependency, and the
# GGUF's package needs none of the CLI it plugs into.
model_log="$(mktemp)"
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    pip_install --no-deps --require-hashes -r requirements-model.lock >"$model_log" 2>&1 &
model_build=$!
trap 'kill "$model_build" 2>/dev/null || true; rm -f "$model_log"' EXIT

# Debian packages the tests drive: PostgreSQL 15's server binaries (a throwaway cluster
# started as the postgres user), Chromium for the web UI's browser tests (Playwright
# drives this one; it never downloads its own), and Prometheus for promtool's rule checks.
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if [ ! -x /usr/lib/postgresql/15/bin/initdb ] || ! command -v chromium >/dev/null \
    || ! command -v promtool >/dev/null; then
    apt-get update -qq
fi
[ -x /usr/lib/postgresql/15/bin/initdb ] || apt_install postgresql-15
command -v chromium >/dev/null || apt_install chromium
# promtool alone: without its recommends (exporters, samba, avahi), a fraction of the download.
command -v promtool >/dev/null || apt_install --no-install-recommends prometheus

# Which vulnerability service answers: pip-audit's own default (PyPI's per-release
# JSON API) first, then OSV. Probed first because pip-audit treats a package it
# could not look up as "skipped", which must not pass for "audited".
vulnerability_service() {
    python3 - <<'PY'
import json
import urllib.request

probes = {
    "pypi": ("https://pypi.org/pypi/pip/24.0/json", None),
    "osv": (
        "https://api.osv.dev/v1/query",
        json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "24.0"}).encode(),
    ),
}
for service, (url, body) in probes.items():
    try:
        with urllib.request.urlopen(url, data=body, timeout=10) as response:
            if response.status == 200:
                print(service)
                break
    except OSError:
        continue
PY
}

service="$(vulnerability_service)"
if [ -n "$service" ]; then
    echo "pip-audit: checking requirements.lock against $service"
    # --strict: a pin that could not be looked up fails the run too.
    python3 -m pip_audit --strict --disable-pip --require-hashes --progress-spinner off \
        --vulnerability-service "$service" -r requirements.lock -r requirements-model.lock
elif [ "${UNDERSTUDY_REQUIRE_AUDIT:-0}" = "1" ]; then
    echo "pip-audit: no vulnerability service reachable (PyPI JSON API, OSV); failing" >&2
    exit 1
else
    echo "pip-audit: NOT RUN: no vulnerability service reachable from this machine" \
        "(PyPI's per-release JSON API and OSV both failed); the lock is unaudited" >&2
fi

python3 -m ruff check .
python3 -m mypy
if ! wait "$model_build"; then
    cat "$model_log" >&2
    echo "the real model's server (requirements-model.lock) did not install" >&2
    exit 1
fi
python3 -m pytest -q "$@"
