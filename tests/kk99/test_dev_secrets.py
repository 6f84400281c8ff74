"""No published secret: the development settings (the fallback of manage.py, asgi, wsgi and
celery) generate a random SECRET_KEY once per checkout, kept in var/ (git-ignored)."""
from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

from kk99.settings.local_secrets import checkout_secret

ROOT = Path(__file__).resolve().parents[2]
PRINT_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"


def _dev_secret_key(var_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update({"KK99_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "kk99.settings.dev"})
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {PRINT_KEY}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_two_checkouts_get_different_keys_and_each_keeps_its_own(tmp_path):
    first, second = tmp_path / "checkout-a" / "var", tmp_path / "checkout-b" / "var"
    key_a, key_b = _dev_secret_key(first), _dev_secret_key(second)
    assert key_a != key_b
    assert len(key_a) >= 50 and len(set(key_a)) >= 5
    assert _dev_secret_key(first) == key_a  # kept across restarts: sessions and encrypted secrets survive
    assert stat.S_IMODE((first / "secret_key").stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_key(tmp_path):
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(checkout_secret(tmp_path))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 16 and len(set(keys)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "secret_key"]  # no temporary files left


def test_no_settings_module_assigns_a_literal_secret_key():
    for path in (ROOT / "kk99" / "settings").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and "SECRET_KEY" in t.id for t in node.targets):
                literal = node.value if isinstance(node.value, ast.Constant) else None
                assert not (literal and isinstance(literal.value, str) and literal.value), f"{path.name}: a constant SECRET_KEY"


def test_the_var_directory_is_git_ignored():
    assert "/var/" in (ROOT / ".gitignore").read_text().split()
