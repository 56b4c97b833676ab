#!/bin/sh
# Run the integration tests (tests/integration, pytest + slixmpp).
#   tests/run-integration.sh [pytest args...]        e.g. -k stream -x
# Environment:
#   XMPPD_BIN=path       binary to test (default: ./xmppd at the repo top)
#   XMPPD_EXTERNAL=host:starttls_port:tls_port   run the client-level scenarios
#                        against an already running server instead (accounts
#                        alice/bob/carol must exist; see tests/integration/conftest.py)
#   PYTHON=path          interpreter with slixmpp and pytest (default: /usr/bin/python3)
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
: "${PYTHON:=/usr/bin/python3}"
: "${XMPPD_BIN:=$top/xmppd}"
export XMPPD_BIN
export PYTHONDONTWRITEBYTECODE=1
cd "$top/tests/integration"
exec "$PYTHON" -m pytest "$@"
