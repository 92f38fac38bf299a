"""The shell commands of a Markdown document, with the line each starts on and the output shown below it.

Two kinds of fenced block hold commands:

- ```` ```console ````: a line starting with ``$ `` is a command; the lines
  after it, up to the next ``$ `` line or ``#`` comment line, are the output
  the document shows for it (trailing blank lines dropped; none shown: None).
- ```` ```sh ```` (and ```` ```bash ````): every line that is not blank and
  not a ``#`` comment is a command; no output is shown.

In both, a command goes on over the next lines while bash would wait for
more: its last line ends with ``\\``, ``|`` or ``&&``, a quote is still open
(a JSON body over several lines), or a ``for``/``while``/``if``/``case`` is not
closed yet; a trailing ``# comment`` (a ``#`` starting a word, outside quotes)
is removed, as bash would ignore it. A block preceded by ``<!-- not run: REASON -->`` (blank
lines between are allowed) is extracted with ``not_run = REASON``: runners
leave it alone, and a test that needs it (a stream that never ends, say) runs
it its own way. Other fences (toml, json, plain ```` ``` ````) hold no commands;
``fences()`` gives every block, for a test that compares a file with one.

Each command knows its document and line (``Command.where``: ``README.md:62``), so
a failure points at the line to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGS = {"console": "console", "sh": "sh", "bash": "sh", "shell": "sh"}

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<lang>[\w-]*)\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_MARKER = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Command:
    """One command as a reader would type it, and the output the document shows for it."""

    doc: str
    line: int
    text: str
    shown: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


@dataclass(frozen=True)
class Block:
    """A fenced block of commands; ``section`` is the heading it sits under."""

    doc: str
    line: int
    lang: str
    section: str
    not_run: str | None
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class Fence:
    """Any fenced block: its language (``""`` when none), body lines (indentation removed) and place."""

    doc: str
    line: int
    lang: str
    section: str
    not_run: str | None
    body: tuple[str, ...]


def read_blocks(path: Path, doc: str | None = None) -> list[Block]:
    """The command blocks of the file at ``path``; ``doc`` names it in messages (default: its name)."""
    return parse_blocks(path.read_text(), doc or path.name)


def parse_blocks(text: str, doc: str) -> list[Block]:
    """The command blocks of Markdown ``text`` (console and sh fences), in document order."""
    blocks: list[Block] = []
    for fence in fences(text, doc):
        kind = SHELL_LANGS.get(fence.lang.lower())
        if kind is None:
            continue
        parse = _console if kind == "console" else _sh
        commands = parse(list(fence.body), doc, fence.line + 1)
        blocks.append(Block(doc, fence.line, kind, fence.section, fence.not_run, tuple(commands)))
    return blocks


def fences(text: str, doc: str) -> list[Fence]:
    """Every fenced block of Markdown ``text``, in document order, with the heading it sits under."""
    lines = text.splitlines()
    found: list[Fence] = []
    section = ""
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            heading = _HEADING.match(lines[i])
            if heading:
                section = heading["title"]
            i += 1
            continue
        start, indent, ticks = i, fence["indent"], fence["ticks"]
        i += 1
        body: list[str] = []
        while i < len(lines) and not re.match(rf"^\s*{ticks}`*\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        if i == len(lines):
            raise ValueError(f"{doc}:{start + 1}: the code block is never closed")
        i += 1
        found.append(Fence(doc, start + 1, fence["lang"], section, _marker(lines, start), tuple(body)))
    return found


def commands_under(blocks: list[Block], section: str) -> list[Block]:
    """The blocks under the heading ``section`` (exact text); an error when there are none."""
    found = [b for b in blocks if b.section == section]
    if not found:
        raise LookupError(f"no command block under the heading {section!r}")
    return found


def _marker(lines: list[str], fence_index: int) -> str | None:
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    found = _MARKER.match(lines[j]) if j >= 0 else None
    return found["reason"] if found else None


def _console(body: list[str], doc: str, first: int) -> list[Command]:
    commands: list[Command] = []
    i = 0
    while i < len(body):
        line = body[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        if not (line.startswith("$ ") or line == "$"):
            raise ValueError(f"{doc}:{first + i}: output with no command above it: {line!r}")
        at = i
        text, i = _gather(body, i, line[2:])
        shown: list[str] = []
        while i < len(body) and not body[i].startswith("$ ") and body[i] != "$" and \
                not body[i].lstrip().startswith("#"):
            shown.append(body[i])
            i += 1
        while shown and not shown[-1].strip():
            shown.pop()
        commands.append(Command(doc, first + at, text, "\n".join(shown) if shown else None))
    return commands


def _sh(body: list[str], doc: str, first: int) -> list[Command]:
    commands: list[Command] = []
    i = 0
    while i < len(body):
        line = body[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        at = i
        text, i = _gather(body, i, line)
        commands.append(Command(doc, first + at, text))
    return commands


def _gather(body: list[str], i: int, head: str) -> tuple[str, int]:
    """The command starting at body[i] (its text ``head``), over continuation lines; and the next index."""
    parts = [head]
    i += 1
    while _continues("\n".join(parts)) and i < len(body):
        parts.append(body[i])
        i += 1
    return strip_comments("\n".join(parts)), i


def _continues(text: str) -> bool:
    """True while bash would wait for more: an open quote, a last line ending in ``\\``, ``|``, ``&&`` or
    ``||``, or a ``for``/``while`` (``do``), ``if`` or ``case`` not yet closed."""
    scan = _scan(text)
    if scan.quote is not None or scan.escaped:
        return True
    bare = scan.bare.rstrip()
    if bare.endswith(("|", "&&")):
        return True
    words = re.findall(r"(?<![\w$-])(do|done|if|fi|case|esac)(?![\w-])", bare)
    opened = sum(w in ("do", "if", "case") for w in words) - sum(w in ("done", "fi", "esac") for w in words)
    return opened > 0


@dataclass(frozen=True)
class _Scan:
    quote: str | None  # the quote still open at the end
    escaped: bool  # the text ends in an escaping backslash
    comments: tuple[tuple[int, int], ...]  # (start, end) of each word-starting # comment outside quotes
    bare: str  # the text with quoted parts and comments blanked out


def _scan(text: str) -> _Scan:
    quote: str | None = None
    comments: list[tuple[int, int]] = []
    bare: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = None
            bare.append(" ")
        elif quote == '"':
            if c == "\\":
                if i + 1 == len(text):
                    return _Scan(quote, True, tuple(comments), "".join(bare))
                bare.append(" ")
                i += 1
            elif c == '"':
                quote = None
            bare.append(" ")
        elif c == "\\":
            if i + 1 == len(text):
                return _Scan(None, True, tuple(comments), "".join(bare))
            bare.append("  ")
            i += 1
        elif c in "'\"":
            quote = c
            bare.append(" ")
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;|&("):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            comments.append((i, end))
            i = end
            continue
        else:
            bare.append(c)
        i += 1
    return _Scan(quote, False, tuple(comments), "".join(bare))


def strip_comments(text: str) -> str:
    """``text`` without its ``# comments`` (outside quotes, at the start of a word), lines right-stripped."""
    out, last = [], 0
    for start, end in _scan(text).comments:
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    return "\n".join(line.rstrip() for line in "".join(out).split("\n")).strip()
