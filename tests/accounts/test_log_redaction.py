"""Signatures, passwords, tokens and reset links never reach a log line: the filter itself,
and the access logs of the real servers (uvicorn, gunicorn) running the app."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from django.test import RequestFactory

from kk99.middleware import SecretRedactingFilter, redact_secrets

ROOT = Path(__file__).resolve().parents[2]
SECRET_QUERY = "/healthz?symbol=BTCUSDT&timestamp=1700000000000&signature=5ca1ab1edeadbeef5ca1ab1edeadbeef&password=hunter2-secret"
LEAKS = ("5ca1ab1edeadbeef", "hunter2-secret")


def _record(msg, args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def _formatted(record: logging.LogRecord) -> str:
    SecretRedactingFilter().filter(record)
    return record.getMessage() + " " + str(getattr(record, "request", ""))


def test_redacts_uvicorn_style_tuple_arguments():
    text = _formatted(_record('%s - "%s %s HTTP/%s" %d', ("10.0.0.1:5000", "GET", SECRET_QUERY, "1.1", 200)))
    assert not any(leak in text for leak in LEAKS) and "signature=[REDACTED]" in text and "symbol=BTCUSDT" in text


def test_redacts_gunicorn_style_dict_arguments():
    record = _record('%(h)s "%(r)s" %(s)s %(q)s', None)
    record.args = {"h": "10.0.0.1", "r": f"GET {SECRET_QUERY} HTTP/1.1", "s": "200", "q": SECRET_QUERY.split("?", 1)[1]}
    text = _formatted(record)
    assert not any(leak in text for leak in LEAKS)


def test_redacts_the_request_django_attaches_and_reset_links():
    request = RequestFactory().get(SECRET_QUERY)
    text = _formatted(_record("Not Found: %s", ("/password-reset/MQ/c4k9xz-0a1b2c3d4e5f/",), request=request))
    assert not any(leak in text for leak in LEAKS) and "c4k9xz" not in text
    assert redact_secrets("/verify-email/eyJ1Ijo1fQ:1abc:xyz/") == "/verify-email/[REDACTED]/"
    assert redact_secrets("/verify-email/resend/") == "/verify-email/resend/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_log(cmd: list[str], port: int) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    tmp = tempfile.mkdtemp(prefix="kk99-logs-")
    env.update({"DJANGO_SETTINGS_MODULE": "kk99.settings.dev", "DEBUG": "0", "KK99_VAR_DIR": tmp, "ALLOWED_HOSTS": "127.0.0.1", "KK99_EMBEDDED_ENGINE": "false", "PYTHONUNBUFFERED": "1"})
    log_path = Path(tmp) / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{SECRET_QUERY}", timeout=2) as response:
                        assert response.status == 200
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise AssertionError(f"server did not answer:\n{log_path.read_text()[-3000:]}") from None
                    time.sleep(0.3)
            for _ in range(50):  # the access line is written after the response
                if "healthz" in log_path.read_text():
                    break
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return log_path.read_text()


@pytest.mark.slow
def test_uvicorn_access_log_never_holds_the_signature():
    port = _free_port()
    text = _server_log([sys.executable, "-m", "uvicorn", "kk99.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], port)
    assert "/healthz?" in text, text[-2000:]  # the access line is there …
    assert not any(leak in text for leak in LEAKS), text[-2000:]  # … without the secrets
    assert "signature=[REDACTED]" in text


@pytest.mark.slow
def test_gunicorn_access_log_never_holds_the_signature():
    port = _free_port()
    cmd = [sys.executable, "-m", "gunicorn", "kk99.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1", "--access-logfile", "-"]
    text = _server_log(cmd, port)
    assert "/healthz?" in text, text[-2000:]
    assert not any(leak in text for leak in LEAKS), text[-2000:]
