#!/usr/bin/env bash
# Runs every test of cloudhsm-local: the Go packages (with the race
# detector), the cross-client suite (AWS CLI, boto3, JavaScript SDK) and the
# examples. Installs the JavaScript SDK from the lock file when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f crossclient/js/package-lock.json ] && [ ! -d crossclient/js/node_modules ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "test.sh: installing the JavaScript SDK from crossclient/js/package-lock.json"
    (cd crossclient/js && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "test.sh: npm not found: the JavaScript cross-client tests will fail under CI=true" >&2
  fi
fi

go vet ./...
go test -race -count=1 -timeout 40m ./...
