"""``galerakv export`` and ``galerakv import``: SQLite -> target -> SQLite, the dumps byte for byte.

The source is one SQLite store of 10,000 keys (binary values of 0 to 3000 bytes, unicode keys,
TTLs, several namespaces and content types, and expired keys that must not travel). Each
``target`` is an empty store of one backend (``sqlite``, or ``mariadb``: the session's Galera
cluster, emptied by ``backend_config``; what a test leaves there is removed before the next).
The commands run as subprocesses, piped the way the docs show them; the bad-input table runs
in process (click's runner) to stay quick.

TTLs: a dump carries the seconds a key had left, and import starts that clock again, so an
export of the copy taken later shows a TTL shorter by the time the copy has existed. What is
held: never longer than the original's (+2 ms for rounding up twice), and shorter by no more
than the seconds that passed since the original export began.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from galerakv import config
from galerakv.backend import create_store
from galerakv.backend.base import Op
from galerakv.backend.sqlite import SQLiteStore
from galerakv.cli.main import main
from tests.support.backends import BACKENDS
from tests.support.configs import write_config

NAMESPACES = {"alpha": 4000, "beta.2": 3500, "gamma_x": 2500}
KEYS = sum(NAMESPACES.values())
CONTENT_TYPES = ("application/octet-stream", "text/plain; charset=utf-8", "application/json", "image/png")
SIZES = (0, 1, 100, 1024, 3000)
TIMEOUT = 180  # seconds for one command, at most


def key_for(i: int) -> str:
    """Keys whose byte order differs from their order as UTF-16 or by locale: ASCII, Cyrillic,
    CJK, an emoji (4 UTF-8 bytes), U+FFFF, a newline (escaped in JSON), a space."""
    forms = (f"k/{i:05d}", f"ключ/{i}", f"日本語/{i:04d}", f"😀{i}", f"\uffff{i}", f"é/{i}", f"line\nbreak/{i}",
             f"a b/{i}")
    return forms[i % len(forms)]


@pytest.fixture(params=BACKENDS[:2])
def backend_variant(request: pytest.FixtureRequest) -> str:
    """The target backends: SQLite and the Galera cluster reached node by node (the balancer
    variant reads and writes the same way, through other ports)."""
    return str(request.param)


def galerakv(*args: str) -> list[str]:
    return [sys.executable, "-m", "galerakv.cli.main", *args]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(galerakv(*args), input=stdin, capture_output=True, timeout=TIMEOUT, check=False,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def ok(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = run(*args)
    assert result.returncode == 0, result.stderr.decode()
    return result


def pipe(source: Path, target: Path) -> dict[str, Any]:
    """``galerakv export --config source | galerakv import --config target --json``: the import's summary."""
    exporter = subprocess.Popen(galerakv("export", "--config", str(source)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    importer = subprocess.Popen(galerakv("import", "--config", str(target), "--json"), stdin=exporter.stdout,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert exporter.stdout is not None and exporter.stderr is not None
    exporter.stdout.close()  # the importer holds the pipe's read end now
    try:
        out, err = importer.communicate(timeout=TIMEOUT)
        exporter.wait(timeout=TIMEOUT)
    finally:
        for proc in (exporter, importer):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    export_err = exporter.stderr.read().decode()
    exporter.stderr.close()
    assert exporter.returncode == 0, export_err
    assert importer.returncode == 0, err.decode()
    # nothing but the summaries: no traceback, no driver notes or log lines
    assert export_err.startswith("exported ") and export_err.count("\n") == 1, export_err
    assert err == b"", err.decode()
    summary: dict[str, Any] = json.loads(out)
    return summary


def export_file(cfg: Path, out: Path, *args: str) -> list[bytes]:
    ok("export", "--config", str(cfg), "--out", str(out), *args)
    return out.read_bytes().splitlines(keepends=True)


def assert_same_dump(original: list[bytes], copy: list[bytes], elapsed: float) -> None:
    """The records byte for byte, but for ttl: never longer, shorter by at most ``elapsed`` s."""
    assert json.loads(copy[0])["galerakv_export"] == 1
    assert len(copy) == len(original)
    for a, b in zip(original[1:], copy[1:], strict=True):
        head_a, ttl_a = a.rsplit(b',"ttl":', 1)
        head_b, ttl_b = b.rsplit(b',"ttl":', 1)
        assert head_a == head_b
        left_a, left_b = json.loads(ttl_a[:-2]), json.loads(ttl_b[:-2])
        if left_a is None or left_b is None:
            assert left_a is left_b is None, (a, b)
        else:
            assert left_a - elapsed - 0.002 <= left_b <= left_a + 0.002, (a, b, elapsed)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config of a SQLite store holding KEYS live keys and some expired ones."""
    root = tmp_path_factory.mktemp("source")
    path = root / "source.sqlite3"
    rnd = random.Random(16)

    async def fill() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            for ns, count in NAMESPACES.items():
                ops = [Op("put", key_for(i), rnd.randbytes(SIZES[i % len(SIZES)]), CONTENT_TYPES[i % 4],
                          ttl=3600.0 + i if i % 3 == 0 else None) for i in range(count)]
                for at in range(0, count, 500):
                    await store.batch(ns, ops[at:at + 500])
            await store.batch("alpha", [Op("put", f"expired/{i}", b"x", "text/plain", ttl=0.01) for i in range(9)])
            await store.put("delta-expired", "k", b"x", "text/plain", ttl=0.01)
        finally:
            await store.close()

    asyncio.run(fill())
    time.sleep(0.02)
    return write_config(root / "source.toml", {"server": {"backend": "sqlite", "sqlite_path": str(path)}})


@pytest.fixture
def target(backend_config: dict[str, Any], tmp_path: Path) -> Path:
    """The config of the current backend's empty store."""
    return write_config(tmp_path / "target.toml", backend_config)


def sqlite_config(path: Path) -> Path:
    return write_config(path.with_suffix(".toml"), {"server": {"backend": "sqlite", "sqlite_path": str(path)}})


def test_copy_there_and_back(source: Path, target: Path, tmp_path: Path) -> None:
    began = time.monotonic()
    original = export_file(source, tmp_path / "source.ndjson")
    assert len(original) == 1 + KEYS  # no expired key, no namespace of expired keys only

    first = pipe(source, target)
    assert (first["keys"], first["namespaces"], first["created"], first["replaced"]) == (KEYS, 3, KEYS, 0)
    copy = export_file(target, tmp_path / "target.ndjson")
    assert_same_dump(original, copy, time.monotonic() - began)

    again = json.loads(ok("import", "--config", str(target), "--in", str(tmp_path / "source.ndjson"),
                          "--json").stdout)
    assert (again["keys"], again["created"], again["replaced"]) == (KEYS, 0, KEYS)  # idempotent
    assert_same_dump(original, export_file(target, tmp_path / "again.ndjson"), time.monotonic() - began)

    back = sqlite_config(tmp_path / "back.sqlite3")
    assert pipe(target, back)["keys"] == KEYS
    assert_same_dump(original, export_file(back, tmp_path / "back.ndjson"), time.monotonic() - began)


def test_namespaces_lists_those_with_live_keys(backend_config: dict[str, Any], tmp_path: Path) -> None:
    settings = config.parse(backend_config, source=tmp_path / "galerakv.toml")

    async def scenario() -> list[str]:
        store = create_store(settings)
        await store.open()
        try:
            await store.put("n-b", "k", b"x", "text/plain")
            await store.put("n-a", "k", b"x", "text/plain", ttl=3600)
            await store.put("n-0", "k", b"x", "text/plain", ttl=0.01)
            await store.put("N-c", "\uffff", b"x", "text/plain")
            await asyncio.sleep(0.05)
            return await store.namespaces()
        finally:
            await store.close()

    assert asyncio.run(scenario()) == ["N-c", "n-a", "n-b"]


def test_sqlite_export_filters(source: Path, tmp_path: Path) -> None:
    everything = export_file(source, tmp_path / "all.ndjson")
    some = export_file(source, tmp_path / "some.ndjson", "--ns", "gamma_x", "--ns", "alpha", "--prefix", "😀1")
    wanted = [line for line in everything[1:]
              if json.loads(line)["ns"] in ("alpha", "gamma_x") and json.loads(line)["key"].startswith("😀1")]
    assert [line.rsplit(b',"ttl":', 1)[0] for line in some[1:]] == [line.rsplit(b',"ttl":', 1)[0] for line in wanted]
    assert len(wanted) > 100
    refused = run("export", "--config", str(source), "--ns", "no spaces")
    assert refused.returncode == 2
    assert b"Invalid value for '--ns': 'no spaces' is not a valid namespace" in refused.stderr


HEADER = '{"galerakv_export":1,"revision":7,"created":"2025-01-01T00:00:00.000Z"}'


def line(**fields: Any) -> str:
    data: dict[str, Any] = {"ns": "app", "key": "k", "value_base64": "aGk=", "content_type": "text/plain",
                            "ttl": None}
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not ...}, ensure_ascii=False)


GOOD = [line(key=f"good/{i}") for i in range(3)]

BAD_INPUT = [
    # (id, the lines, the line named, what the message says)
    ("not json", [HEADER, *GOOD, "{nope"], 5, "not valid JSON"),
    ("bad base64", [HEADER, *GOOD, line(value_base64="***")], 5, "value_base64 is not valid base64"),
    ("missing field", [HEADER, *GOOD, line(content_type=...)], 5, "no field 'content_type'"),
    ("extra field", [HEADER, *GOOD, line(version="3")], 5, "unknown field 'version'"),
    ("bad ns", [HEADER, *GOOD, line(ns="a/b")], 5, "ns 'a/b' is not a valid namespace"),
    ("bad key", [HEADER, *GOOD, line(key="")], 5, "key is empty"),
    ("key too long", [HEADER, *GOOD, line(key="é" * 513)], 5, "key is 1026 bytes; the limit is 1024 bytes"),
    ("negative ttl", [HEADER, *GOOD, line(ttl=-5)], 5, "ttl must be null (no expiry) or a number of seconds"),
    ("no header", GOOD, 1, "not the header of a galerakv export"),
    ("wrong header", ['{"galerakv_export":9}', *GOOD], 1, "format 9; this galerakv reads format 1"),
    ("not an export", ["ns,key,value", "app,k,v"], 1, "not valid JSON"),
]


@pytest.mark.parametrize(("lines", "where", "says"), [case[1:] for case in BAD_INPUT],
                         ids=[case[0] for case in BAD_INPUT])
def test_sqlite_import_refuses_bad_input_and_stores_nothing(lines: list[str], where: int, says: str,
                                                             tmp_path: Path) -> None:
    dump_path = tmp_path / "bad.ndjson"
    dump_path.write_text("\n".join(lines) + "\n")
    cfg = sqlite_config(tmp_path / "kv.sqlite3")
    result = CliRunner().invoke(main, ["import", "--config", str(cfg), "--in", str(dump_path)])
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: line {where}: ")
    assert says in result.stderr
    assert result.stderr.rstrip().endswith("; nothing was imported")
    assert export_lines_in_process(cfg) == 1  # the header alone


def export_lines_in_process(cfg: Path) -> int:
    result = CliRunner().invoke(main, ["export", "--config", str(cfg)])
    assert result.exit_code == 0, result.stderr
    return len(result.stdout_bytes.splitlines())


def test_sqlite_import_from_a_pipe_stops_at_the_bad_line(source: Path, tmp_path: Path) -> None:
    good = export_file(source, tmp_path / "source.ndjson")[:1202]  # the header and 1201 keys
    bad = line(ns="alpha", key="zzz", ttl=True).encode() + b"\n"
    cfg = sqlite_config(tmp_path / "kv.sqlite3")
    result = run("import", "--config", str(cfg), stdin=b"".join([*good, bad, *good[1:3]]))
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr
    assert stderr.startswith("error: line 1203: ttl must be null (no expiry) or a number of seconds")
    assert "not true; the 1201 keys of the lines before it were imported, none after it" in stderr
    assert export_lines_in_process(cfg) == 1202
