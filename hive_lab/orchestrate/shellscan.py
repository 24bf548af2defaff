"""Find the visible writes and the destructive git in a shell command, without running it.

Best effort by design: the guard answers "ask" on what this finds outside the scope, and the
backstop audit catches what it misses, so this errs towards reporting a write (a person is
asked) rather than missing one. It never executes or expands anything.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from . import shellex

WRITE, UNKNOWN, DESTRUCTIVE, FORCE_PUSH = "write", "unknown", "destructive", "force_push"
MAX_DEPTH = 3
MAX_COMMAND = 100_000
MAX_SUBSTITUTIONS = 64  # per level: more is no hand-written command, and each is re-read
MAX_FINDINGS = 200


@dataclass(frozen=True)
class Finding:
    """``kind``: write (``target`` relative to ``cwd``, or absolute), unknown (a write to a
    place we cannot tell), destructive (git that drops work), force_push (``target`` = branch)."""

    kind: str
    what: str
    target: str | None = None
    cwd: str | None = None


_SEPARATORS = {";", "&&", "||", "|", "&", "\n", "(", ")", "|&", ";;", ";&", ";;&", "{", "}"}
_REDIRECT_OUT = {">", ">>", ">|", "&>", "&>>", "<>"}
_REDIRECT_IN = {"<", "<<", "<<<", "<&", "<<-"}
_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "time"}
_WRAPPERS = {"sudo", "nohup", "command", "exec", "builtin", "nice", "ionice", "stdbuf",
             "chronic", "doas", "unbuffer"}
_WRAPPER_ARG_OPTS = {"-u", "-g", "-p", "-C", "-D", "-r", "-t", "-U", "-h", "-n", "-c", "-o", "-e"}
_DEV_OK = re.compile(r"/dev/(null|stdout|stderr|tty|fd/\d+)")
_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_ALL_POSITIONAL = {"rm", "rmdir", "touch", "mkdir", "truncate", "unlink", "shred"}
_ARG_OPTS = {"truncate": {"-s", "--size", "-r", "--reference"}, "mkdir": {"-m", "--mode"},
             "touch": {"-d", "-t", "-r", "--date", "--reference"}, "shred": {"-n", "-s"},
             "cp": {"-t", "-S", "--suffix"}, "mv": {"-t", "-S", "--suffix"},
             "install": {"-m", "-o", "-g", "-t", "-S", "--mode", "--owner", "--group"},
             "ln": {"-t", "-S"}, "tee": set(), "chmod": {"--reference"}, "chown": {"--reference"}}
_PY_WRITE_LIT = [
    re.compile(r"open\(\s*[rbuf]*(['\"])([^'\"]+)\1\s*,\s*(?:mode\s*=\s*)?[rbuf]*(['\"])[^'\"]*[wax+][^'\"]*\3"),
    re.compile(r"Path\(\s*[rbuf]*(['\"])([^'\"]+)\1\s*\)\s*\.\s*(?:write_text|write_bytes|touch|mkdir|unlink|rmdir|rename|replace)\("),
    re.compile(r"(?:writeFileSync|appendFileSync|writeFile|appendFile|createWriteStream|mkdirSync|rmSync|unlinkSync|rmdirSync)\(\s*(['\"`])([^'\"`]+)\1"),
    re.compile(r"(?:os\.remove|os\.unlink|os\.rmdir|os\.makedirs|os\.mkdir|shutil\.rmtree)\(\s*[rbuf]*(['\"])([^'\"]+)\1"),
]
_PY_WRITE_ANY = re.compile(
    r"open\([^)]*['\"][^'\"]*[wax+][^'\"]*['\"]|write_text|write_bytes|writeFile|appendFile|"
    r"createWriteStream|os\.(?:remove|unlink|rename|replace|rmdir|makedirs|mkdir|truncate)|"
    r"shutil\.|unlinkSync|rmSync|renameSync|copyFileSync|\.write\(|File\.write|FileUtils")


def scan(command: str, cwd: str | None, home: str | None = None, depth: int = 0) -> list[Finding]:
    """All findings in ``command`` run from ``cwd`` (None: unknown). Never raises: what it
    cannot read (unbalanced quotes, a NUL, too long, nested too deep) is an UNKNOWN finding,
    which the guard answers with "ask"."""
    if len(command) > MAX_COMMAND:
        return [Finding(UNKNOWN, "a command too long to read")]
    if "\x00" in command:
        return [Finding(UNKNOWN, "a command with a NUL byte")]
    try:
        lexed = shellex.lex(command)
    except ValueError as exc:
        return [Finding(UNKNOWN, f"a command the guard cannot read ({exc})")]
    findings: list[Finding] = []
    if len(lexed.substitutions) > MAX_SUBSTITUTIONS:
        return [Finding(UNKNOWN, f"more than {MAX_SUBSTITUTIONS} command substitutions")]
    for inner in lexed.substitutions:
        if depth + 1 >= MAX_DEPTH:
            findings.append(Finding(UNKNOWN, "command substitutions nested too deep to read"))
            break
        findings += scan(inner, cwd, home, depth + 1)
    state = {"cwd": cwd}
    current: list[shellex.Tok] = []
    for tok in lexed.tokens + [shellex.Tok(";", op=True)]:
        if tok.op and tok.text in _SEPARATORS:
            if current:
                findings += _simple(current, state, home, depth)
            current = []
        else:
            current.append(tok)
    if len(findings) > MAX_FINDINGS:  # each is resolved on the hook's hot path: a person decides
        return [*findings[:MAX_FINDINGS], Finding(UNKNOWN, f"more than {MAX_FINDINGS} writes")]
    return findings


def _resolve_dir(target: str, cwd: str | None, home: str | None) -> str | None:
    if "$" in target or "`" in target or any(c in target for c in "*?["):
        return None
    if target.startswith("~"):
        if home is None or not (target == "~" or target.startswith("~/")):
            return None
        target = home + target[1:]
    if target.startswith("/"):
        return os.path.normpath(target)
    return None if cwd is None else os.path.normpath(os.path.join(cwd, target))


def _simple(words: list[shellex.Tok], state: dict[str, str | None], home: str | None,
            depth: int) -> list[Finding]:
    """One simple command: its redirections, then what the command itself writes. Only an
    unquoted operator redirects (``echo '>' x`` writes nothing)."""
    cwd = state["cwd"]
    found: list[Finding] = []
    args: list[str] = []
    i = 0
    in_test = False  # inside [[ ... ]], < and > compare strings
    while i < len(words):
        tok = words[i]
        w = tok.text
        if not tok.op and w in ("[[", "]]"):
            in_test = w == "[[" and not args
        elif in_test and tok.op and w in ("<", ">"):
            args.append(w)
            i += 1
            continue
        nxt = words[i + 1] if i + 1 < len(words) else None
        target = nxt.text if nxt is not None and not nxt.op else ""
        if tok.op and (w in _REDIRECT_OUT or w == ">&"):
            if w == ">&" and (target.isdigit() or target == "-" or re.fullmatch(r"\d+-", target)):
                pass  # fd duplication (2>&1, >&-), not a file
            elif target and not _DEV_OK.fullmatch(target):
                found.append(Finding(WRITE, f"redirection {w}", target, cwd))
            i += 2 if target else 1
            continue
        if tok.op and w in _REDIRECT_IN:
            i += 2 if target else 1
            continue
        if tok.op:  # an operator the shell would not take here: the command does not parse
            found.append(Finding(UNKNOWN, f"an operator {w!r} out of place"))
            i += 1
            continue
        args.append(w)
        i += 1
    # leading keywords, assignments and wrappers
    while args and (args[0] in _KEYWORDS or _ASSIGN.match(args[0])):
        args.pop(0)
    while args:
        name = os.path.basename(args[0])
        if name in _WRAPPERS:
            args.pop(0)
            while args and args[0].startswith("-"):
                opt = args.pop(0)
                if opt in _WRAPPER_ARG_OPTS and args:
                    args.pop(0)
        elif name == "env":
            args.pop(0)
            while args and (args[0].startswith("-") or _ASSIGN.match(args[0])):
                args.pop(0)
        elif name == "timeout":
            args.pop(0)
            while args and args[0].startswith("-"):
                args.pop(0)
            if args:
                args.pop(0)  # the duration
        elif name == "xargs":
            if len(args) > 1 and _command_writes(os.path.basename(args[-1] if len(args) == 2 else args[1])):
                found.append(Finding(UNKNOWN, "xargs feeding a command that writes files"))
            return found
        else:
            break
    if not args:
        return found
    name = os.path.basename(args[0])
    rest = args[1:]
    if name in ("cd", "pushd"):
        dest = rest[0] if rest else (home or None)
        state["cwd"] = None if dest in (None, "-") else _resolve_dir(dest, cwd, home)
        return found
    if name in _SHELLS:
        script = _shell_script(rest)
        if script is not None:
            if depth + 1 >= MAX_DEPTH:
                return found + [Finding(UNKNOWN, f"{name} -c nested too deep to read")]
            return found + scan(script, cwd, home, depth + 1)
    if name == "eval" and rest:
        if depth + 1 >= MAX_DEPTH:
            return found + [Finding(UNKNOWN, "eval nested too deep to read")]
        return found + scan(" ".join(rest), cwd, home, depth + 1)
    return found + _command(name, rest, cwd, home)


_SHELLS = {"bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "busybox"}


def _shell_script(rest: list[str]) -> str | None:
    """The command string of ``bash -c CMD`` and its spellings (``-lc``, ``-ec``, ``-o x -c``,
    ``busybox sh -c``): the first operand after an option cluster holding ``c``."""
    if rest and rest[0] == "sh":  # busybox sh ...
        rest = rest[1:]
    i, has_c = 0, False
    while i < len(rest):
        a = rest[i]
        if a == "--":
            i += 1
            break
        if a in ("-o", "+o", "-O", "+O") and not has_c:
            i += 2
            continue
        if len(a) > 1 and a[0] in "-+" and not a.startswith("--"):
            has_c = has_c or "c" in a[1:]
            i += 1
            continue
        if a.startswith("--"):
            i += 1
            continue
        break
    return rest[i] if has_c and i < len(rest) else None


def _command_writes(name: str) -> bool:
    return name in _ALL_POSITIONAL or name in ("cp", "mv", "ln", "install", "tee", "sed", "chmod",
                                              "chown", "dd", "perl")


def _positional(name: str, rest: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional arguments and the values of options that take one."""
    takes = _ARG_OPTS.get(name, set())
    pos: list[str] = []
    opts: dict[str, str] = {}
    i, after_ddash = 0, False
    while i < len(rest):
        a = rest[i]
        if after_ddash or not a.startswith("-") or a == "-":
            pos.append(a)
        elif a == "--":
            after_ddash = True
        elif "=" in a and a.startswith("--"):
            k, v = a.split("=", 1)
            opts[k] = v
        elif a in takes:
            opts[a] = rest[i + 1] if i + 1 < len(rest) else ""
            i += 1
        i += 1
    return pos, opts


def _command(name: str, rest: list[str], cwd: str | None, home: str | None) -> list[Finding]:
    w = lambda what, t: Finding(WRITE, what, t, cwd)  # noqa: E731
    if name in _ALL_POSITIONAL:
        pos, _ = _positional(name, rest)
        return [w(name, p) for p in pos]
    if name == "tee":
        pos, _ = _positional(name, rest)
        return [w("tee", p) for p in pos if not _DEV_OK.fullmatch(p)]
    if name in ("chmod", "chown", "chgrp"):
        pos, opts = _positional(name, rest)
        return [w(name, p) for p in (pos if "--reference" in opts else pos[1:])]
    if name in ("cp", "install", "ln", "mv"):
        pos, opts = _positional(name, rest)
        if name == "install" and ("-d" in rest or "--directory" in rest):
            return [w("install -d", p) for p in pos]
        target_dir = opts.get("-t") or opts.get("--target-directory")
        if target_dir:
            dests = [target_dir + "/" + os.path.basename(p.rstrip("/")) for p in pos] or [target_dir]
            return [w(name, d) for d in dests] + ([w("mv", p) for p in pos] if name == "mv" else [])
        if name == "ln" and len(pos) == 1:
            return [w("ln", os.path.basename(pos[0].rstrip("/")))]
        if len(pos) < 2:
            return []
        out = [w(name, pos[-1])]
        if name == "mv":
            out += [w("mv (source removed)", p) for p in pos[:-1]]
        return out
    if name == "sed":
        return _in_place("sed", rest, cwd)
    if name == "perl":
        return _in_place("perl", rest, cwd)
    if name == "dd":
        return [w("dd of=", a[3:]) for a in rest if a.startswith("of=")]
    if name == "curl":
        return [w("curl -o", rest[k + 1]) for k, a in enumerate(rest[:-1]) if a in ("-o", "--output")]
    if name == "wget":
        return [w("wget -O", rest[k + 1]) for k, a in enumerate(rest[:-1])
                if a in ("-O", "--output-document") and rest[k + 1] != "-"]
    if name == "find":
        return _find(rest, cwd)
    if name == "git":
        return _git(rest, cwd, home)
    if re.fullmatch(r"python[0-9.]*|pypy[0-9.]*", name):
        return _inline_code(rest, cwd, ("-c",), name)
    if name in ("node", "deno", "bun", "ruby"):
        return _inline_code(rest, cwd, ("-e", "--eval", "-p"), name)
    return []


def _in_place(name: str, rest: list[str], cwd: str | None) -> list[Finding]:
    """``sed -i`` / ``perl -i``: the files it edits (the positional args after the script)."""
    script_letters, arg_letters = ("ef", "l") if name == "sed" else ("eE", "MI")
    in_place, script, pos = False, False, []
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--in-place" or a.startswith("--in-place="):
            in_place = True
        elif a in ("--expression", "--file"):
            script, i = True, i + 1
        elif a.startswith(("--expression=", "--file=")):
            script = True
        elif a.startswith("-") and len(a) > 1 and not a.startswith("--"):
            letters = a[1:]
            for k, c in enumerate(letters):
                if c == "i":
                    in_place = True
                    break  # the rest is a backup suffix
                if c in script_letters or c in arg_letters:
                    script = script or c in script_letters
                    if k == len(letters) - 1:
                        i += 1  # its argument is the next word
                    break
        else:
            pos.append(a)
        i += 1
    if not in_place:
        return []
    files = pos if script else pos[1:]
    return [Finding(WRITE, f"{name} -i", f, cwd) for f in files]


def _find(rest: list[str], cwd: str | None) -> list[Finding]:
    starts = []
    for a in rest:
        if a.startswith("-") or a in ("(", "!"):
            break
        starts.append(a)
    writes = "-delete" in rest or any(
        a in ("-exec", "-execdir", "-ok") and k + 1 < len(rest) and _command_writes(os.path.basename(rest[k + 1]))
        for k, a in enumerate(rest))
    if not writes:
        return []
    return [Finding(WRITE, "find -delete/-exec", (s.rstrip("/") or "/") + "/**", cwd) for s in starts or ["."]]


def _inline_code(rest: list[str], cwd: str | None, flags: tuple[str, ...], name: str) -> list[Finding]:
    code = None
    for k, a in enumerate(rest[:-1]):
        if a in flags:
            code = rest[k + 1]
            break
    if code is None:
        return []
    found = [Finding(WRITE, f"{name} code", m.group(2), cwd) for rx in _PY_WRITE_LIT for m in rx.finditer(code)]
    if not found and _PY_WRITE_ANY.search(code):
        found.append(Finding(UNKNOWN, f"{name} code that writes a file the guard cannot name"))
    return found


_GIT_GLOBAL_ARG = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path"}


def _git(rest: list[str], cwd: str | None, home: str | None) -> list[Finding]:
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        a = rest[i]
        if a == "-C" and i + 1 < len(rest):
            cwd = _resolve_dir(rest[i + 1], cwd, home)
        if a in _GIT_GLOBAL_ARG:
            i += 1
        i += 1
    if i >= len(rest):
        return []
    sub, args = rest[i], rest[i + 1:]
    shorts = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    d = lambda what: [Finding(DESTRUCTIVE, what)]  # noqa: E731
    w = lambda what, t: Finding(WRITE, what, t, cwd)  # noqa: E731
    if sub == "reset" and "--hard" in args:
        return d("git reset --hard discards uncommitted changes")
    if sub == "clean" and ("f" in shorts or "--force" in args) and not (
            "n" in shorts or "--dry-run" in args):
        return d("git clean -f deletes untracked files")
    if sub == "stash":
        action = next((a for a in args if not a.startswith("-")), "push")
        if action not in ("list", "show"):
            return d(f"git stash {action} moves or drops uncommitted work")
        return []
    if sub in ("checkout", "switch") and ("f" in shorts.replace("b", "") and sub == "checkout"
                                          or "--force" in args or "--discard-changes" in args
                                          or (sub == "switch" and "f" in shorts)):
        return d(f"git {sub} with --force/--discard-changes throws away local changes")
    if sub in ("checkout", "restore"):
        if "--" in args:
            paths = args[args.index("--") + 1:]
        else:
            pos = [a for k, a in enumerate(args) if not a.startswith("-")
                   and not (k > 0 and args[k - 1] in ("-b", "-B", "-s", "--source", "--orphan"))]
            paths = pos if sub == "restore" else pos[1:] + [p for p in pos[:1] if p in (".", ":/", "*")]
        if sub == "restore" and ("--staged" in args or "S" in shorts) and not (
                "--worktree" in args or "W" in shorts):
            return []
        if any(p in (".", ":/", "*", "./", ":/*", ":(top)") for p in paths):
            return d(f"git {sub} . discards every uncommitted change in the tree")
        return [w(f"git {sub}", p) for p in paths]
    if sub == "rm" and "--cached" not in args:
        return [w("git rm", p) for p in args if not p.startswith("-")]
    if sub == "mv":
        return [w("git mv", p) for p in args if not p.startswith("-")]
    if sub == "apply" and "--check" not in args and "--stat" not in args:
        return [Finding(UNKNOWN, "git apply writes the files named in the patch")]
    if sub == "push":
        force = "--force" in args or "f" in shorts or any(a.startswith("--force-with-lease") for a in args)
        pos = [a for a in args if not a.startswith("-")]
        refspecs = pos[1:]
        force = force or any(r.startswith("+") for r in refspecs)
        if force:
            dsts = [r.lstrip("+").split(":")[-1].removeprefix("refs/heads/") for r in refspecs]
            return [Finding(FORCE_PUSH, "git push --force", dst) for dst in dsts] or [
                Finding(FORCE_PUSH, "git push --force", None)]
    return []
