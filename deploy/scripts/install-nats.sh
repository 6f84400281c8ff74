#!/usr/bin/env bash
# Debian's nats-server for the event-feed tests (tests/events): the chaos test starts its OWN
# JetStream server on a random port (it SIGKILLs it), the other tests use the server at
# KK99_NATS_URL (default nats://127.0.0.1:4222, started here if nothing listens there).
# Idempotent.
set -euo pipefail
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-nats: apt-get not available; install nats-server by hand" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nats-server
fi
BIN="$(command -v nats-server || echo /usr/sbin/nats-server)"
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  mkdir -p var/nats
  nohup "$BIN" -js -a 127.0.0.1 -p 4222 -sd var/nats >var/nats/nats.log 2>&1 &
  echo "install-nats: started $BIN -js on 127.0.0.1:4222 (store var/nats)"
else
  echo "install-nats: a NATS server listens on 127.0.0.1:4222"
fi
