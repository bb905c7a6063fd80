#!/usr/bin/env bash
# Regenerates requirements.lock: every runtime, test and audit dependency pinned
# with the sha256 of every file PyPI has for that version, so
# `pip install --require-hashes -r requirements.lock` installs the same bytes anywhere.
#
# The hashes come from PyPI alone: the machine's pip configuration (local indexes,
# find-links, constraints) is switched off while resolving, so a locally built or
# locally mirrored file can never end up as the only accepted hash.
# Run it after changing dependencies in pyproject.toml; pass --upgrade to move every
# pin to the newest release (e.g. when pip-audit reports a vulnerable one).
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_TOOLS_VERSION=7.6.2
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT

python3 -m venv "$tools/venv"
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "pip-tools==$PIP_TOOLS_VERSION"

env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
    PIP_CONFIG_FILE=/dev/null \
    "$tools/venv/bin/pip-compile" \
    --quiet \
    --generate-hashes \
    --allow-unsafe \
    --strip-extras \
    --all-build-deps \
    --index-url https://pypi.org/simple \
    --no-emit-index-url \
    --no-emit-find-links \
    --extra test \
    --extra audit \
    --output-file requirements.lock \
    "$@" \
    pyproject.toml
echo "wrote requirements.lock ($(grep -c '^[a-z0-9]' requirements.lock) pins)"
