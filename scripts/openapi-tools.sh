#!/usr/bin/env bash
# Print the bin directory of a Python venv with a real OpenAPI 3.1 validator
# (openapi-spec-validator) and a client generator (openapi-python-client),
# installing them from PyPI into target/tools/openapi when missing. The e2e
# suite validates the portal's /api/openapi.json with them and calls the portal
# through the generated client (e2e/openapi_client_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tools/openapi
if [ ! -x "$venv/bin/openapi-python-client" ] || [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q openapi-spec-validator==0.9.0 openapi-python-client==0.29.1 >&2
fi
echo "$PWD/$venv/bin"
