#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, then runs lint, type checks
# and the whole test suite (slow tier included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# PostgreSQL 15 server binaries: the tests start a throwaway cluster as the postgres user.
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi

python3 -m ruff check .
python3 -m mypy
python3 -m pytest -q "$@"
