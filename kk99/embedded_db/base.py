"""Django database backend for the embedded default: PostgreSQL's backend, plus starting the
project's own server (:mod:`kk99.embedded_db`) before the first connection. Everything else —
``connection.vendor == "postgresql"``, SQL, locking — is PostgreSQL's, unchanged."""
from __future__ import annotations

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

from kk99 import embedded_db


class DatabaseWrapper(PostgresDatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        server = embedded_db.server_start(self.settings_dict["PGDATA"])
        info = server.get_postmaster_info()
        params["host"] = str(info.socket_dir)
        params["port"] = info.port
        return params
