"""A small shell lexer for the guard: words, the operators that are really operators, and the
command substitutions to read recursively.

Why not ``shlex``: in POSIX mode it drops the quotes, so ``echo '>' x`` and ``echo > x`` lex
to the same tokens and a quoted ``>`` reads as a redirection. This lexer keeps that
difference (an operator is only an operator outside quotes), reads here-documents the way bash
does (the body starts after the line's newline and ends at the delimiter line; an unquoted
delimiter means the body's ``$(...)`` runs), and hands back every ``$(...)``, backquote and
``<(...)``/``>(...)`` so their commands are scanned too. It never runs or expands anything, and
its work is linear in the input apart from substitutions, which are nested at most MAX_NEST deep.
Anything it cannot read raises ValueError; the guard then asks a person.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_NEST = 8
MAX_TOKENS = 5000  # words and operators of one command line (here-document bodies not counted)
# longest first: the lexer takes the longest operator that matches
_OPS = ("&>>", ";;&", "<<<", "<<-", "&&", "||", "|&", ";;", ";&", ">>", ">|", ">&", "<<", "<&",
        "<>", "&>", ";", "&", "|", "<", ">", "(", ")", "\n")
_OP_START = frozenset(op[0] for op in _OPS)
_OPS_AT = {c: tuple(o for o in _OPS if o[0] == c) for c in _OP_START}  # longest first
_BLANK = " \t\r"
_FD_PREFIX = re.compile(r"\d+|\{[A-Za-z_][A-Za-z0-9_]*\}")
_PLAIN = re.compile(r"[^ \t\r\n\\'\"`$<>|&;()]+")  # a run of ordinary word characters
_DQ_PLAIN = re.compile(r"[^\\`$\"]+")  # ... and inside double quotes


@dataclass(frozen=True)
class Tok:
    """A word (quotes removed; substitutions kept as written, so a target holding one cannot
    be resolved) or, when ``op``, an operator that appeared outside quotes."""

    text: str
    op: bool = False


@dataclass
class Lexed:
    tokens: list[Tok] = field(default_factory=list)
    substitutions: list[str] = field(default_factory=list)  # commands inside $(), ``, <(), >()


class _Lexer:
    def __init__(self, text: str, nest: int = 0) -> None:
        if nest > MAX_NEST:
            raise ValueError("command substitutions nested too deep")
        self.s, self.n, self.nest = text, len(text), nest
        self.out = Lexed()
        self.word: list[str] = []
        self.in_word = False
        self.quoted = False
        self.want_delim: bool | None = None  # after << / <<-: the next word is a delimiter
        self.heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, dash, expands)

    # -- words ------------------------------------------------------------------------------
    def _finish(self) -> None:
        if not self.in_word:
            return
        text = "".join(self.word)
        if self.want_delim is not None:
            self.heredocs.append((text, self.want_delim, not self.quoted))
            self.want_delim = None
        is_brace = not self.quoted and text in ("{", "}")
        self.out.tokens.append(Tok(text, op=is_brace))
        if len(self.out.tokens) > MAX_TOKENS:
            raise ValueError(f"more than {MAX_TOKENS} words and operators")
        self.word, self.in_word, self.quoted = [], False, False

    def _add(self, text: str, quoted: bool = False) -> None:
        self.word.append(text)
        self.in_word = True
        self.quoted = self.quoted or quoted

    # -- the main loop ----------------------------------------------------------------------
    def run(self, stop_at_paren: bool = False) -> int:
        """Lex from 0; with ``stop_at_paren``, stop at the ``)`` closing a ``$(`` and return its
        index (ValueError if there is none)."""
        s, n = self.s, self.n
        i, depth = 0, 0
        while i < n:
            c = s[i]
            if c in _BLANK:
                self._finish()
                i += 1
            elif c == "\\":
                if i + 1 < n and s[i + 1] == "\n":
                    i += 2  # line continuation
                elif i + 1 < n:
                    self._add(s[i + 1], quoted=True)
                    i += 2
                else:
                    self._add("\\")
                    i += 1
            elif c == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    raise ValueError("a single quote is not closed")
                self._add(s[i + 1:j], quoted=True)
                i = j + 1
            elif c == '"':
                i = self._dquote(i + 1, closing='"')
            elif c == "`":
                i = self._backquote(i + 1)
            elif c == "$":
                i = self._dollar(i)
            elif c in "<>" and i + 1 < n and s[i + 1] == "(":
                inner, i = self._paren(i + 2)  # process substitution: a /dev/fd path
                self.out.substitutions.append(inner)
                self._add("/dev/fd/63")
            elif c == "#" and not self.in_word:
                j = s.find("\n", i)
                i = n if j < 0 else j  # a comment, up to (not including) the newline
            elif c in _OP_START:
                if c in "<>" and self.in_word and not self.quoted and _FD_PREFIX.fullmatch(
                        "".join(self.word)):
                    self.word, self.in_word = [], False  # "2>": the fd number, not a word
                self._finish()
                op = next(o for o in _OPS_AT[c] if s.startswith(o, i))
                i += len(op)
                if stop_at_paren:
                    if op == "(":
                        depth += 1
                    elif op == ")":
                        if depth == 0:
                            return i - 1
                        depth -= 1
                self.out.tokens.append(Tok(op, op=True))
                if len(self.out.tokens) > MAX_TOKENS:
                    raise ValueError(f"more than {MAX_TOKENS} words and operators")
                if op in ("<<", "<<-"):
                    self.want_delim = op == "<<-"
                elif op == "\n" and self.heredocs:
                    i = self._bodies(i)
            else:
                m = _PLAIN.match(s, i)
                end = m.end() if m else i + 1
                self._add(s[i:end])
                i = end
        if stop_at_paren:
            raise ValueError("a $( or ( is not closed")
        self._finish()
        if self.heredocs and self.want_delim is None:
            self._bodies(n)  # heredoc on the last line without a newline: empty body
        return n

    # -- quoting and expansions -------------------------------------------------------------
    def _dquote(self, i: int, closing: str | None) -> int:
        """Inside "...": only $, ` and \\ are special. ``closing`` None reads to the end (a
        here-document body, an arithmetic expression). Returns the index after the quote."""
        s, n = self.s, self.n
        buf: list[str] = []
        while i < n:
            c = s[i]
            if closing is not None and c == closing:
                self._add("".join(buf), quoted=True)
                return i + 1
            if c == "\\" and i + 1 < n:
                nxt = s[i + 1]
                if nxt == "\n":
                    i += 2
                    continue
                buf.append(nxt if nxt in '$`"\\' else "\\" + nxt)
                i += 2
            elif c == "`":
                inner, i = self._read_backquote(i + 1)
                self.out.substitutions.append(inner)
                buf.append("`" + inner + "`")
            elif c == "$" and s.startswith("$(", i):
                raw, i = self._subst(i)
                buf.append(raw)
            elif c == "$" and s.startswith("${", i):
                raw, i = self._brace(i)
                buf.append(raw)
            else:
                m = _DQ_PLAIN.match(s, i)
                end = m.end() if m else i + 1
                buf.append(s[i:end])
                i = end
        if closing is not None:
            raise ValueError("a double quote is not closed")
        self._add("".join(buf), quoted=True)
        return n

    def _dollar(self, i: int) -> int:
        s = self.s
        if s.startswith("$(", i):
            raw, i = self._subst(i)
            self._add(raw)
        elif s.startswith("${", i):
            raw, i = self._brace(i)
            self._add(raw)
        elif s.startswith("$'", i):  # ANSI-C quoting: a literal string
            j = i + 2
            while j < self.n and s[j] != "'":
                j += 2 if s[j] == "\\" else 1
            if j >= self.n:
                raise ValueError("a $' quote is not closed")
            self._add(s[i + 2:j], quoted=True)
            i = j + 1
        else:
            self._add("$")
            i += 1
        return i

    def _subst(self, i: int) -> tuple[str, int]:
        """``$((arith))`` or ``$(command)`` at ``i``: the raw text and the index after it."""
        s = self.s
        if s.startswith("$((", i):
            j, depth = i + 3, 0
            while j < self.n:
                if s[j] == "(":
                    depth += 1
                elif s[j] == ")":
                    if depth == 0:
                        break
                    depth -= 1
                j += 1
            if s.startswith("))", j):
                inner = s[i + 3:j]
                sub = _Lexer(inner, self.nest + 1)  # arithmetic runs no commands but its own $()
                sub._dquote(0, closing=None)
                self.out.substitutions += sub.out.substitutions
                return s[i:j + 2], j + 2
            # "$( (a) ...)": a subshell inside a command substitution
        inner, j = self._paren(i + 2)
        self.out.substitutions.append(inner)
        return "$(" + inner + ")", j

    def _paren(self, start: int) -> tuple[str, int]:
        """The text from ``start`` to the matching ``)``, lexed on its own to find that paren
        the way the shell does (quotes, nested substitutions, comments)."""
        sub = _Lexer(self.s[start:], self.nest + 1)
        end = sub.run(stop_at_paren=True)
        return self.s[start:start + end], start + end + 1

    def _brace(self, i: int) -> tuple[str, int]:
        """``${...}``: a parameter expansion; its default words may hold substitutions."""
        s, j, depth = self.s, i + 2, 0
        while j < self.n:
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                if depth == 0:
                    break
                depth -= 1
            j += 1
        if j >= self.n:
            raise ValueError("a ${ is not closed")
        inner = s[i + 2:j]
        if "$(" in inner or "`" in inner:
            sub = _Lexer(inner, self.nest + 1)
            sub._dquote(0, closing=None)
            self.out.substitutions += sub.out.substitutions
        return s[i:j + 1], j + 1

    def _read_backquote(self, i: int) -> tuple[str, int]:
        s, buf = self.s, []
        while i < self.n:
            c = s[i]
            if c == "\\" and i + 1 < self.n:
                nxt = s[i + 1]
                buf.append(nxt if nxt in "$`\\" else "\\" + nxt)
                i += 2
            elif c == "`":
                return "".join(buf), i + 1
            else:
                buf.append(c)
                i += 1
        raise ValueError("a backquote is not closed")

    def _backquote(self, i: int) -> int:
        inner, i = self._read_backquote(i)
        self.out.substitutions.append(inner)
        self._add("`" + inner + "`")
        return i

    def _bodies(self, i: int) -> int:
        """The bodies of the here-documents opened on the line that just ended, from ``i``."""
        s = self.s
        for delim, dash, expands in self.heredocs:
            start = i
            while i < self.n:
                j = s.find("\n", i)
                end = self.n if j < 0 else j
                line = s[i:end]
                i = end + 1 if j >= 0 else self.n
                if (line.lstrip("\t") if dash else line) == delim:
                    body_end = end - len(line)
                    break
            else:
                body_end = self.n
            if expands:
                sub = _Lexer(s[start:body_end], self.nest + 1)
                sub._dquote(0, closing=None)
                self.out.substitutions += sub.out.substitutions
        self.heredocs = []
        return min(i, self.n)


def lex(text: str) -> Lexed:
    """Tokens and substitutions of ``text``; ValueError when it does not lex."""
    lexer = _Lexer(text)
    lexer.run()
    return lexer.out
