"""The peer to beat: the key-value server a user writes in an afternoon with Flask + PyMySQL.

Same paths and bodies as galerakv's key API, so bench/run.py drives it with the same wrk
scripts: `PUT /v1/ns/<ns>/kv/<key>` stores the raw body (201 when new, 200 when replaced,
small JSON body), `GET /v1/ns/<ns>/kv/<key>` answers the raw value or 404. The rows live in
the table `peer_kv` (created if missing), written with `REPLACE INTO` and read with a
plain `SELECT`, both on one MariaDB server (bench/run.py: the Galera cluster's first node,
port 3306). One PyMySQL connection per worker process, opened on first use, autocommit on;
a connection that fails is dropped and the next request opens a new one.

Run it under gunicorn with sync workers, settings in the environment:

    FLASK_KV_HOST=127.0.0.41 FLASK_KV_PORT=3306 FLASK_KV_USER=... FLASK_KV_PASSWORD=... \\
    FLASK_KV_DATABASE=galerakv gunicorn -w 4 -b 127.0.0.1:8081 --pythonpath bench/peers flask_kv:app
"""

from __future__ import annotations

import contextlib
import os

import pymysql
from flask import Flask, Response, jsonify, request

app = Flask(__name__)

CREATE = (
    "CREATE TABLE IF NOT EXISTS peer_kv ("
    " ns VARBINARY(128) NOT NULL,"
    " k VARBINARY(512) NOT NULL,"
    " v LONGBLOB NOT NULL,"
    " PRIMARY KEY (ns, k)"
    ") ENGINE=InnoDB"
)

_conn: pymysql.connections.Connection | None = None  # one per worker process (gunicorn forks after import)


def db() -> pymysql.connections.Connection:
    global _conn
    if _conn is None:
        conn = pymysql.connect(
            host=os.environ.get("FLASK_KV_HOST", "127.0.0.1"),
            port=int(os.environ.get("FLASK_KV_PORT", "3306")),
            user=os.environ["FLASK_KV_USER"],
            password=os.environ["FLASK_KV_PASSWORD"],
            database=os.environ.get("FLASK_KV_DATABASE", "galerakv"),
            autocommit=True,
            connect_timeout=5,
            read_timeout=30,
            write_timeout=30,
        )
        with conn.cursor() as cur:
            cur.execute(CREATE)
        _conn = conn
    return _conn


def _drop() -> None:
    global _conn
    if _conn is not None:
        with contextlib.suppress(pymysql.Error):
            _conn.close()
        _conn = None


@app.errorhandler(pymysql.Error)
def db_error(exc: pymysql.Error) -> tuple[Response, int]:
    _drop()  # reconnect on the next request
    return jsonify(error="database", detail=str(exc)[:200]), 503


@app.get("/healthz")
def healthz() -> tuple[Response, int]:
    with db().cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return jsonify(ok=True), 200


@app.get("/v1/ns/<ns>/kv/<path:key>")
def get_key(ns: str, key: str) -> Response | tuple[Response, int]:
    with db().cursor() as cur:
        cur.execute("SELECT v FROM peer_kv WHERE ns = %s AND k = %s", (ns.encode(), key.encode()))
        row = cur.fetchone()
    if row is None:
        return jsonify(error="not_found", key=key), 404
    return Response(row[0], 200, content_type="application/octet-stream")


@app.put("/v1/ns/<ns>/kv/<path:key>")
def put_key(ns: str, key: str) -> tuple[Response, int]:
    value = request.get_data()
    with db().cursor() as cur:
        affected = cur.execute(
            "REPLACE INTO peer_kv (ns, k, v) VALUES (%s, %s, %s)", (ns.encode(), key.encode(), value)
        )
    created = affected == 1  # REPLACE of an existing row: 2 (delete + insert)
    return jsonify(ns=ns, key=key, size=len(value), created=created), 201 if created else 200
