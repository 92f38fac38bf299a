"""The runner the doc tests stand on: extraction (markdown.py), comparison (shown.py), the shell (doc_shell.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.support.doc_shell import DocShell
from tests.support.markdown import Command, commands_under, fences, parse_blocks, strip_comments
from tests.support.shown import mismatch, normalise_text

DOC = """\
# Title

Text.

## Tour

```console
$ curl -i -X PUT --data-binary 'hello' \\
       http://127.0.0.1:8080/v1/ns/demo/kv/greeting
HTTP/1.1 201 Created
etag: "1"

{"key":"greeting"}

# a comment ends the output
$ ETAG=$(curl -s -o /dev/null -w '%header{etag}' http://x/)   # a trailing comment
$ curl -s -d '{"a": 1,
             "b": "# not a comment"}' http://x/
{"ok":true}
$ true
```

<!-- not run: streams until Ctrl-C -->

```console
$ curl -N http://x/watch
id: 4
...
```

```toml
[server]
port = 8080
```

## Cluster

1. By hand:

   ```sh
   galerakv cluster init --local 3      # write a file
   sudo galerakv cluster up
   for n in db1 db2; do
     echo "$n # kept"
   done
   ls |
     wc -l
   ```
"""


def test_console_commands_their_lines_and_the_output_shown() -> None:
    tour, watch = commands_under(parse_blocks(DOC, "DOC.md"), "Tour")
    put, etag, body, true = tour.commands
    assert (tour.line, tour.lang, tour.not_run) == (7, "console", None)
    assert put.where == "DOC.md:8"
    assert put.text == "curl -i -X PUT --data-binary 'hello' \\\n       http://127.0.0.1:8080/v1/ns/demo/kv/greeting"
    assert put.shown == 'HTTP/1.1 201 Created\netag: "1"\n\n{"key":"greeting"}'
    assert etag.where == "DOC.md:16"
    assert etag.text == "ETAG=$(curl -s -o /dev/null -w '%header{etag}' http://x/)"
    assert etag.shown is None
    assert body.text.endswith("\"b\": \"# not a comment\"}' http://x/")
    assert body.shown == '{"ok":true}'
    assert (true.text, true.shown) == ("true", None)
    assert watch.not_run == "streams until Ctrl-C"
    assert watch.commands[0].shown == "id: 4\n..."


def test_sh_commands_in_an_indented_fence() -> None:
    (block,) = commands_under(parse_blocks(DOC, "DOC.md"), "Cluster")
    assert [c.where for c in block.commands] == ["DOC.md:41", "DOC.md:42", "DOC.md:43", "DOC.md:46"]
    init, up, loop, pipe = block.commands
    assert init.text == "galerakv cluster init --local 3"
    assert up.text == "sudo galerakv cluster up"
    assert loop.text == 'for n in db1 db2; do\n  echo "$n # kept"\ndone'
    assert pipe.text == "ls |\n  wc -l"
    assert all(c.shown is None for c in block.commands)


def test_other_fences_are_kept_apart() -> None:
    (toml,) = [f for f in fences(DOC, "DOC.md") if f.lang == "toml"]
    assert (toml.line, toml.section, toml.body) == (31, "Tour", ("[server]", "port = 8080"))
    assert [b.lang for b in parse_blocks(DOC, "DOC.md")] == ["console", "console", "sh"]


@pytest.mark.parametrize(("text", "problem"), [
    ("```console\nhello\n$ true\n```\n", "DOC.md:2: output with no command above it"),
    ("```sh\ntrue\n", "DOC.md:1: the code block is never closed"),
])
def test_malformed_blocks_are_errors(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_blocks(text, "DOC.md")


def test_no_block_under_a_heading_is_an_error() -> None:
    with pytest.raises(LookupError):
        commands_under(parse_blocks(DOC, "DOC.md"), "Nowhere")


@pytest.mark.parametrize(("text", "stripped"), [
    ("a # b", "a"),
    ("a#b", "a#b"),
    ("echo '# x' \"# y\" # z", "echo '# x' \"# y\""),
    ("echo ${#x} \\# y", "echo ${#x} \\# y"),
    ("a # b\nc", "a\nc"),
])
def test_comments(text: str, stripped: str) -> None:
    assert strip_comments(text) == stripped


# --- what "the output shown" means -----------------------------------------------------------------

PROBLEM = ('{"type":"urn:galerakv:problem:precondition_failed","status":412,'
           '"detail":"the key\'s current ETag is \\"734912\\", not the one in If-Match",'
           '"instance":"/v1/ns/demo/kv/greeting","current_etag":"\\"734912\\""}')


@pytest.mark.parametrize(("shown", "printed"), [
    # volatile numbers: ETags, revisions, expiry times
    ('{"key":"a","etag":"\\"1\\"","revision":1,"expires_at":1795688127.731}',
     '{"key":"a","etag":"\\"7349123\\"","revision":90817,"expires_at":1796288648}'),
    ("x-galerakv-revision: 3", "x-galerakv-revision: 98765"),
    (": watching demo from revision 3\n\nid: 4", ": watching demo from revision 50\n\nid: 51"),
    # JSON: wrapped, spaced, members in another order
    ('{"type":"urn:galerakv:problem:precondition_failed",\n "status": 412,\n'
     ' "instance":"/v1/ns/demo/kv/greeting", "current_etag":"\\"2\\"",\n'
     ' "detail":"the key\'s current ETag is \\"2\\", not the one in If-Match"}', PROBLEM),
    # ... : more members, the rest of a string, more elements, more lines, the rest of a line
    ('{"type":"urn:galerakv:problem:precondition_failed","status":412,...}', PROBLEM),
    ('{"type":"urn:galerakv:problem:...","status":412,"detail":...,...}', PROBLEM),
    ('{"items":[{"key":"a"},...]}', '{"items":[{"key":"a"},{"key":"b"},{"key":"c"}]}'),
    ("id: 4\nevent: put\n...", "id: 4\nevent: put\ndata: {}\n\nid: 5\nevent: put\ndata: {}\n"),
    ("a\n...\nb", "a\nb"),
    ("# HELP galerakv_requests_total ...", "# HELP galerakv_requests_total HTTP requests.\r\n"),
    # server-sent events: the JSON of a data line
    ('data: {"key":"a","revision":4,"etag":"\\"4\\""}', 'data: {"etag":"\\"99\\"","key":"a","revision":99}'),
    # HTTP: the headers shown, in order, among more
    ('HTTP/1.1 201 Created\netag: "1"\nx-galerakv-revision: 1\n\n{"key":"g"}',
     'HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nETag: "88"\r\nX-Galerakv-Revision: 88\r\n'
     'date: Thu, 03 Dec 2026 09:03:08 GMT\r\n\r\n{"key":"g"}'),
    ("HTTP/1.1 200 OK\ncontent-type: text/plain\n...", "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhi"),
])
def test_outputs_that_agree(shown: str, printed: str) -> None:
    assert mismatch(shown, printed) is None


@pytest.mark.parametrize(("shown", "printed", "reason"), [
    ('{"status":412}', '{"status":409}', r"\$.status: 409, not 412"),
    ('{"key":"a","status":200}', '{"key":"a"}', r"members missing \['status'\]"),
    ('{"key":"a"}', '{"key":"a","status":200}', r"not shown \['status'\]"),
    ('{"limit":1048576}', '{"limit":1048577}', "limit"),
    ('{"current_etag":null}', '{"current_etag":"\\"3\\""}', "current_etag"),
    ('{"items":[{"key":"a"}]}', '{"items":[{"key":"a"},{"key":"b"}]}', "2 elements, not 1"),
    ('{"value":"hello"}', "hello", "not JSON"),
    ('{"revision":"1"}', '{"revision":1}', "revision"),
    ("HTTP/1.1 201 Created", "HTTP/1.1 200 OK\r\n\r\n", "status line"),
    ('HTTP/1.1 200 OK\netag: "1"\ncontent-type: text/plain', 'HTTP/1.1 200 OK\ncontent-type: text/plain\netag: "1"',
     "in this order"),
    ("HTTP/1.1 200 OK\n\nhello", "HTTP/1.1 200 OK\n\nhello again", "the lines differ"),
    ("id: 4\nevent: put", "id: 4\nevent: delete", "the lines differ"),
    ("a\n...\nb", "a\nc", "the lines differ"),
    ('data: {"key":"a"}', 'data: {"key":"b"}', "the lines differ"),
])
def test_outputs_that_differ(shown: str, printed: str, reason: str) -> None:
    found = mismatch(shown, printed)
    assert found is not None
    assert re.search(reason, found), found


def test_only_the_volatile_numbers_are_normalised() -> None:
    assert normalise_text('etag: "12" status 201 revision: 9 limit 1048576') == \
        'etag: "N" status 201 revision: N limit 1048576'


# --- the shell -------------------------------------------------------------------------------------

def test_variables_and_the_directory_carry_over(tmp_path: Path) -> None:
    shell = DocShell(tmp_path)
    shell.check(Command("DOC.md", 1, "X=$(echo '\"42\"'); mkdir sub && cd sub"))
    ran = shell.check(Command("DOC.md", 2, 'echo "$X" in $(basename "$PWD")', '"42" in sub'))
    assert ran.stdout == '"42" in sub\n'


def test_galerakv_is_the_one_under_test_and_no_config_leaks_in(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GALERAKV_CONFIG", "/nonexistent.toml")
    shell = DocShell(tmp_path)
    ran = shell.check(Command("DOC.md", 1, "command -v galerakv; echo ${GALERAKV_CONFIG:-unset}"))
    assert ran.stdout == f"{Path(sys.executable).parent / 'galerakv'}\nunset\n"


def test_a_failing_command_names_its_line(tmp_path: Path) -> None:
    shell = DocShell(tmp_path)
    with pytest.raises(AssertionError, match=r"(?s)the command failed\nDOC.md:7: \$ false \| cat.*exit 1"):
        shell.check(Command("DOC.md", 7, "false | cat"))  # pipefail


def test_a_different_output_names_its_line(tmp_path: Path) -> None:
    shell = DocShell(tmp_path)
    with pytest.raises(AssertionError, match=r"(?s)differs from the document.*DOC.md:3: \$ echo b"):
        shell.check(Command("DOC.md", 3, "echo b", "a"))


def test_only_standard_output_is_compared(tmp_path: Path) -> None:
    DocShell(tmp_path).check(Command("DOC.md", 1, "echo progress >&2; echo out", "out"))


def test_substitutions_and_sudo(tmp_path: Path) -> None:
    shell = DocShell(tmp_path, substitute={"127.0.0.1:8080": "127.0.0.1:5"}, drop_sudo=True)
    command = Command("DOC.md", 1, "sudo echo 127.0.0.1:8080 && sudo echo sudoku | sudo cat")
    assert shell.text_of(command) == "echo 127.0.0.1:5 && echo sudoku | cat"
    assert DocShell(tmp_path).text_of(command) == command.text


def test_a_stream_is_read_until_it_shows_what_the_document_shows(tmp_path: Path) -> None:
    shell = DocShell(tmp_path)
    ran = shell.check_stream(Command("DOC.md", 1, "echo 'id: 4'; echo 'id: 5'; sleep 60", "id: 4\n..."), timeout=20)
    assert ran.seconds < 10
    with pytest.raises(AssertionError, match="did not print what the document shows within 1 s"):
        shell.check_stream(Command("DOC.md", 2, "echo 'id: 4'; sleep 60", "id: 4\nid: 5"), timeout=1)
