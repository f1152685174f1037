"""A JSON Schema ``pattern`` written for Python's ``re`` (or pydantic's Rust engine) as an
ECMAScript regular expression with the ``u`` flag, for the zod schemas a browser runs.

The two dialects read many patterns differently. Python's ``\\w`` and ``\\d`` are Unicode-aware,
JavaScript's are ASCII: copied as they are, a client would refuse ``"José"`` that the server
accepts. ``(?P<name>...)``, ``\\A``, ``\\Z``, ``{,3}`` and escaped punctuation such as ``\\-``
mean something in Python and are syntax errors for JavaScript's ``u`` flag, which would stop the
whole module from loading. So patterns are translated, and where the meaning cannot be kept
(scoped flags, atomic groups, possessive quantifiers, ``\\p{...}``, ``\\W`` inside a class)
:func:`ecma_pattern` returns None: the generated schema then leaves the pattern to the server,
which is looser, never stricter, than the server.

``\\w`` becomes the union of Python's and Rust's word characters (letters, numbers, marks,
connector punctuation, the joiners), so the client errs on the side of accepting.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["ecma_pattern"]

_WORD: Final = r"\p{L}\p{N}\p{M}\p{Pc}\u200C\u200D"
#: characters JavaScript's ``u`` flag allows escaped outside a class
_SYNTAX: Final = frozenset("^$\\.*+?()[]{}|/")
_FLAGS: Final = {"i": "i", "m": "m", "s": "s", "u": ""}
_QUANTIFIER: Final = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")
_LEADING_FLAGS: Final = re.compile(r"\(\?([aimsux]+)\)")
_HEX: Final = re.compile(r"[0-9A-Fa-f]+")


def ecma_pattern(pattern: str) -> tuple[str, str] | None:
    """``(source, flags)`` for ``new RegExp(source, flags)`` matching what ``pattern`` matches
    in Python, or None when that cannot be written (the caller then leaves the check out)."""
    flags = {"u"}
    ascii_only = False
    leading = _LEADING_FLAGS.match(pattern)
    if leading:
        for flag in leading.group(1):
            if flag == "x":
                return None  # verbose patterns: whitespace and comments would need a rewrite
            if flag == "a":
                ascii_only = True
            elif _FLAGS[flag]:
                flags.add(_FLAGS[flag])
        pattern = pattern[leading.end() :]
    source = _Translation(pattern, ascii_only).run()
    return None if source is None else (source, "".join(sorted(flags)))


class _Translation:
    """One pass over the pattern; ``failed`` once a construct JavaScript cannot say is met."""

    def __init__(self, pattern: str, ascii_only: bool) -> None:
        self.p = pattern
        self.ascii = ascii_only
        self.i = 0
        self.out: list[str] = []
        self.in_class = False
        self.failed = False

    def run(self) -> str | None:
        while self.i < len(self.p) and not self.failed:
            char = self.p[self.i]
            if char == "\\":
                self._escape()
            elif self.in_class:
                self._class_char(char)
            else:
                self._char(char)
        if self.in_class or self.failed:
            return None
        return "".join(self.out)

    def _class_char(self, char: str) -> None:
        if char == "]":
            self.in_class = False
        self.out.append(char)
        self.i += 1

    def _char(self, char: str) -> None:
        p, i = self.p, self.i
        if char == "[":
            self.in_class = True
            start = i + 2 if p.startswith("[^", i) else i + 1
            self.out.append(p[i:start])
            self.i = start
            if p.startswith("]", start):  # Python: a leading "]" is literal; JavaScript: "[]" is empty
                self.out.append("\\]")
                self.i += 1
            return
        if char == "(":
            self._group()
            return
        if char == "{":
            match = _QUANTIFIER.match(p, i)
            if match and (match.group(1) or match.group(3)):
                low, comma, high = match.group(1) or "0", match.group(2) or "", match.group(3) or ""
                self.out.append(f"{{{low}{comma}{high}}}")
                self.i = match.end()
                self._no_possessive()
                return
            self.out.append("\\{")  # a literal brace: Python allows it bare, the u flag does not
        elif char in "}]":
            self.out.append("\\" + char)
        else:
            self.out.append(char)
        self.i += 1
        if char in "*+?":
            self._no_possessive()

    def _no_possessive(self) -> None:
        # "a*+" is possessive in Python 3.11; "a*?" is lazy in both
        if self.p.startswith("+", self.i):
            self.failed = True

    def _group(self) -> None:
        p, i = self.p, self.i
        if p.startswith("(?P<", i):
            self.out.append("(?<")
            self.i += 4
        elif p.startswith(("(?P=", "(?#"), i):
            end = p.find(")", i)
            if end < 0:
                self.failed = True
                return
            if p.startswith("(?P=", i):
                self.out.append(f"\\k<{p[i + 4 : end]}>")
            self.i = end + 1
        elif p.startswith(("(?:", "(?=", "(?!", "(?<=", "(?<!"), i) or not p.startswith("(?", i):
            self.out.append("(")
            self.i += 1
        else:  # scoped or late flags, atomic groups, conditionals
            self.failed = True

    def _escape(self) -> None:
        p, i = self.p, self.i
        if i + 1 >= len(p):
            self.failed = True
            return
        char = p[i + 1]
        self.i += 2
        if char in "wWdD" and not self.ascii:
            self.out.append(self._unicode_class(char))
        elif char == "A" and not self.in_class:
            self.out.append("^")
        elif char == "Z" and not self.in_class:
            self.out.append("$")
        elif char in "wWdDsSbBntrfv" or (char.isdigit() and char != "0"):
            self.out.append("\\" + char)
        elif char == "0":
            digits = re.match(r"[0-7]{0,2}", p[self.i :])
            assert digits is not None
            self.i += len(digits.group())
            self.out.append(f"\\u{{{int('0' + digits.group(), 8):x}}}")
        elif char in "xuU":
            self._hex(char)
        elif char.isascii() and char.isalnum():  # \p, \N{...}, \G, \z...: no equivalent
            self.failed = True
        elif char in _SYNTAX or (self.in_class and char == "-"):
            self.out.append("\\" + char)
        else:
            self.out.append(char)  # escaped punctuation JavaScript takes bare

    def _unicode_class(self, char: str) -> str:
        if char == "d":
            return r"\p{Nd}"
        if char == "D":
            return r"\P{Nd}"
        if char == "w":
            return _WORD if self.in_class else f"[{_WORD}]"
        if self.in_class:  # a negated set inside a set: JavaScript's u flag cannot say it
            self.failed = True
        return f"[^{_WORD}]"

    def _hex(self, kind: str) -> None:
        width = {"x": 2, "u": 4, "U": 8}[kind]
        digits = self.p[self.i : self.i + width]
        if len(digits) != width or not _HEX.fullmatch(digits):
            self.failed = True
            return
        self.i += width
        self.out.append(f"\\u{{{int(digits, 16):x}}}")
