"""Every key a Lua script touches is passed in KEYS, as Redis documents (and Redis Cluster
needs: a cluster client routes a script by its keys), except the few a script can only find
inside, listed below with the reason.

The check reads every script: the .lua files of every package and the scripts written inline
in Python modules. For each `redis.call`/`redis.pcall` it takes the key arguments of the
command and follows them back: a key is fine when it is `KEYS[i]`, a local bound only to
such, a function parameter whose every caller passes such, or an element of `KEYS` or of a
table of such. A key built from ARGV, a string, or by concatenating onto a declared key is
not. A derived key (a conversation named by an offer, an agent's offers, a key listed in a
set) is fine only when it is built by a name in DERIVED for that script, or concatenated
onto one. Those keys are not declared, so they must share the hash slot of the declared
ones: session/keys.py's prefix is a hash tag (`{or:v1}`), checked here too.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

from redis.crc import key_slot

from session import keys

ROOT = Path(__file__).resolve().parents[2]

# (script, name) -> why the key is derived inside the script rather than passed by the caller.
# A name is a local helper function (`conv_key(id)`) or a loop variable over stored key names.
# Every entry must be used (an unused entry fails the test).
DERIVED: dict[tuple[str, str], str] = {
    # The caller names the offer only; its conversation id is in the offer hash. Reading it
    # first would cost the accept path a round trip (and the expiry timer one per offer).
    ("router/lua/accept.lua", "conv_key"): "the offer's conversation, read from the offer",
    ("router/lua/release.lua", "conv_key"): "the offer's conversation, read from the offer",
    ("router/lua/release.lua", "agent_offers_key"): "the offer's agent, read from the offer",
    (
        "router/lua/release.lua",
        "queue_key",
    ): "the queue the conversation goes back to, from its hash",
    # The caller names the conversation only; what holds it is in the conversation hash.
    ("router/lua/abandon.lua", "offer_key"): "the conversation's pending offer, from its hash",
    ("router/lua/abandon.lua", "agent_offers_key"): "that offer's agent, from the offer",
    ("router/lua/abandon.lua", "queue_key"): "the queue it waits in, from its hash",
    ("router/lua/enqueue.lua", "old_queue_key"): "the queue it waited in before, from its hash",
    # The caller's job names a queue, but an overflow move may have changed it since.
    ("router/lua/offer.lua", "queue_key"): "the queue it waits in now, from its hash",
    # An agent going offline hands back whatever its sets hold.
    ("router/lua/offline.lua", "offer_key"): "each offer in the agent's offers set",
    ("router/lua/offline.lua", "conv_key"): "each offer's or assignment's conversation",
    ("router/lua/offline.lua", "queue_key"): "the queue each goes back to, from its hash",
    # Identification: the customer is known only once a link is read.
    ("session/lua/identify.lua", "customer_key"): "the directory record of the linked customer",
    ("session/lua/identify.lua", "idents_key"): "the idents set of the linked customer",
    # Ingest follows calls, threads, the current pointer and fold redirects.
    ("session/lua/ingest.lua", "ckey"): "conversations found by call, thread, pointer or fold",
    ("session/lua/ingest.lua", "cust_key"): "a customer the id is redirected to (fold, call owner)",
    ("session/lua/ingest.lua", "queue_key"): "the queue of a folded conversation, from its hash",
    (
        "session/lua/ingest.lua",
        "ref_key",
    ): "thread/call keys listed in a folded conversation's refs",
    # Erasure starts from a customer id and removes whatever hangs off it.
    ("session/lua/erase.lua", "derived"): "the customer's and its aliases' conversations, offers, "
    "agents, queues, tasks, orders, notices and visitors, all found from its sets",
    ("session/lua/erase.lua", "ref_key"): "keys listed in a conversation's refs set",
    ("session/lua/erase.lua", "link_key"): "identity keys listed in the customer's idents set",
    # A directory record replaces the links the previous one made (stored in the record).
    ("session/lua/put_customer.lua", "old_link_key"): "links the previous record made",
    # Progress notices held by quiet hours: ids from the held zset.
    ("session/notices.py:_TAKE", "notice_key"): "each notice named by the held zset",
}

# The argument positions (1 = first after the command name) that are keys, per command.
_ALL = -1
KEY_ARGS: dict[str, tuple[int, ...]] = {
    **{
        c: (1,)
        for c in (
            "GET SET INCR DECR EXPIRE PEXPIRE HGET HSET HMGET HDEL HGETALL HEXISTS HINCRBY "
            "SADD SREM SMEMBERS SISMEMBER SCARD ZADD ZREM ZRANGE ZRANGEBYSCORE ZREMRANGEBYSCORE "
            "ZSCORE ZCARD RPUSH LRANGE LTRIM XADD"
        ).split()
    },
    "DEL": (_ALL,),
    "EXISTS": (_ALL,),
    "SUNIONSTORE": (_ALL,),
    "TIME": (),
}

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<comment>--\[\[.*?\]\]|--[^\n]*)|(?P<long>\[\[.*?\]\])"""
    r"""|(?P<str>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
    r"""|(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<op>\.\.\.|\.\.|==|~=|<=|>=|[-+*/%^#<>=(){}\[\];:,.])""",
    re.S,
)
_OPEN, _CLOSE = "([{", ")]}"
_BLOCK_OPEN = {"function", "if", "do"}


@dataclass
class Tok:
    kind: str
    text: str
    line: int


def tokenize(source: str) -> list[Tok]:
    out, pos, line = [], 0, 1
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        assert m, f"cannot read Lua at line {line}: {source[pos : pos + 30]!r}"
        kind = m.lastgroup or ""
        if kind not in ("ws", "comment"):
            out.append(Tok("str" if kind == "long" else kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return out


def _close(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing the one at i."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].text in _OPEN:
            depth += 1
        elif toks[j].text in _CLOSE:
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError(f"unclosed bracket at line {toks[i].line}")


def _split(toks: list[Tok], sep: str = ",") -> list[list[Tok]]:
    """Split at top-level `sep`."""
    parts: list[list[Tok]] = [[]]
    depth = 0
    for t in toks:
        if t.text in _OPEN:
            depth += 1
        elif t.text in _CLOSE:
            depth -= 1
        if depth == 0 and t.text == sep and t.kind == "op":
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _text(expr: list[Tok]) -> str:
    return " ".join(t.text for t in expr)


@dataclass
class Function:
    name: str
    params: list[str]
    start: int  # token index of the body's first token
    end: int  # token index of its `end`


@dataclass
class Script:
    name: str
    toks: list[Tok]
    functions: list[Function] = field(default_factory=list)
    # name -> [(kind, expr)]: kind "expr" (bound to expr), "elem" (element of expr), "other"
    bindings: dict[str, list[tuple[str, list[Tok]]]] = field(default_factory=dict)


def _statement_end(toks: list[Tok], i: int) -> int:
    """Index after the expression list starting at i: the rest of the line, and further
    while a bracket is open."""
    depth, line, j = 0, toks[i].line, i
    while j < len(toks):
        t = toks[j]
        if depth == 0 and t.line != line and j > i:
            break
        if t.text in _OPEN:
            depth += 1
        elif t.text in _CLOSE:
            if depth == 0:
                break
            depth -= 1
            line = t.line
        j += 1
    return j


def parse(name: str, source: str) -> Script:
    toks = tokenize(source)
    s = Script(name, toks)
    stack: list[tuple[int, Function | None]] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "name" and t.text == "function":
            fname = toks[i + 1].text if toks[i + 1].kind == "name" else "<anonymous>"
            if fname == "<anonymous>" and i >= 2 and toks[i - 1].text == "=":
                fname = toks[i - 2].text
            p = i + 1 if toks[i + 1].text == "(" else i + 2
            close = _close(toks, p)
            params = [x[0].text for x in _split(toks[p + 1 : close]) if x]
            f = Function(fname, params, close + 1, -1)
            s.functions.append(f)
            stack.append((i, f))
            i = close + 1
            continue
        if t.kind == "name" and t.text in ("if", "do"):
            stack.append((i, None))
        elif t.kind == "name" and t.text == "end":
            _, f = stack.pop()
            if f is not None:
                f.end = i
        elif t.kind == "name" and t.text == "for":
            j = toks.index(next(x for x in toks[i:] if x.text in ("in", "=")), i)
            names = [x[0].text for x in _split(toks[i + 1 : j]) if x]
            if toks[j].text == "in":
                k = toks.index(next(x for x in toks[j:] if x.text == "do"), j)
                it = toks[j + 1 : k]
                # ipairs(x) / pairs(x): the last name is an element of x
                inner = it[2:-1] if len(it) > 3 and it[1].text == "(" else it
                s.bindings.setdefault(names[-1], []).append(("elem", inner))
                for n in names[:-1]:
                    s.bindings.setdefault(n, []).append(("other", []))
            else:
                s.bindings.setdefault(names[0], []).append(("other", []))
        elif t.kind == "name" and (
            t.text == "local" or (i == 0 or toks[i - 1].line != t.line or toks[i - 1].text == ";")
        ):
            # `local a, b = x, y` or `a, b = x, y` at the start of a statement
            j = i + 1 if t.text == "local" else i
            names, k = [], j
            while k < len(toks) and toks[k].kind == "name":
                names.append(toks[k].text)
                if k + 1 < len(toks) and toks[k + 1].text == ",":
                    k += 2
                else:
                    k += 1
                    break
            if names and k < len(toks) and toks[k].text == "=":
                end = _statement_end(toks, k + 1)
                exprs = _split(toks[k + 1 : end])
                for n_i, n in enumerate(names):
                    e = exprs[min(n_i, len(exprs) - 1)]
                    if n_i >= len(exprs) and not (e and e[-1].text == ")"):
                        s.bindings.setdefault(n, []).append(("other", []))
                    else:
                        s.bindings.setdefault(n, []).append(("expr", e))
            elif names and t.text == "local":
                for n in names:  # `local x` (assigned later)
                    s.bindings.setdefault(n, [])
        i += 1
    return s


DECLARED, DERIVED_KIND = "declared", "derived"


@dataclass
class Checker:
    script: Script
    used_allow: set[tuple[str, str]]
    violations: list[str] = field(default_factory=list)
    key_params: set[tuple[str, int]] = field(default_factory=set)

    def enclosing(self, at: int) -> list[Function]:
        return [f for f in self.script.functions if f.start <= at <= f.end]

    def bad(self, expr: list[Tok], why: str) -> None:
        line = expr[0].line if expr else 0
        self.violations.append(f"{self.script.name}:{line}: key `{_text(expr)}` {why}")

    def kinds(
        self, expr: list[Tok], at: int, seen: frozenset[str] = frozenset()
    ) -> set[str] | None:
        """What a key expression is: {declared}, {derived}, both; None when it is neither
        (built from ARGV, a string, or onto a declared key)."""
        e = expr
        if len(e) >= 4 and e[0].text == "KEYS" and e[1].text == "[" and _close(e, 1) == len(e) - 1:
            return {DECLARED}
        parts = _split(e, "..")
        if len(parts) > 1:
            head = self.kinds(parts[0], at, seen)
            return {DERIVED_KIND} if head == {DERIVED_KIND} else None
        if e and e[0].kind == "name" and len(e) >= 3 and e[1].text == "(":
            if _close(e, 1) == len(e) - 1 and self.allowed(e[0].text):
                return {DERIVED_KIND}
            return None
        if len(e) == 1 and e[0].text == "...":
            for f in self.enclosing(at):
                if "..." in f.params:
                    self.key_param(f, f.params.index("..."), vararg=True)
                    return {DECLARED}
            return None
        if len(e) == 1 and e[0].kind == "name":
            return self.name_kinds(e[0].text, at, seen)
        return None

    def allowed(self, name: str) -> bool:
        entry = (self.script.name, name)
        if entry in DERIVED:
            self.used_allow.add(entry)
            return True
        return False

    def name_kinds(self, name: str, at: int, seen: frozenset[str]) -> set[str] | None:
        if self.allowed(name):
            return {DERIVED_KIND}
        for f in self.enclosing(at):
            if name in f.params:
                self.key_param(f, f.params.index(name))
                return {DECLARED}  # checked at every call site instead
        if name in seen:
            return set()
        bindings = self.script.bindings.get(name)
        if not bindings:
            return None
        out: set[str] = set()
        for kind, expr in bindings:
            if kind == "other":
                return None
            if kind == "elem":
                if _text(expr) == "KEYS":
                    got: set[str] | None = {DECLARED}
                elif expr and expr[0].text == "{" and _close(expr, 0) == len(expr) - 1:
                    got = set()
                    for item in _split(expr[1:-1]):
                        k = self.kinds(item, at, seen | {name}) if item else set()
                        if k is None:
                            return None
                        got |= k
                else:
                    return None
            else:
                got = self.kinds(expr, at, seen | {name})
            if got is None:
                return None
            out |= got
        return out

    def key_param(self, f: Function, index: int, vararg: bool = False) -> None:
        if (f.name, index) in self.key_params:
            return
        self.key_params.add((f.name, index))
        toks = self.script.toks
        for i, t in enumerate(toks[:-1]):
            if (
                t.text != f.name
                or toks[i + 1].text != "("
                or (i and toks[i - 1].text == "function")
            ):
                continue
            args = _split(toks[i + 2 : _close(toks, i + 1)])
            for arg in args[index:] if vararg else args[index : index + 1]:
                self.check_key(arg, i)

    def check_key(self, expr: list[Tok], at: int) -> None:
        if not expr:
            return
        if self.kinds(expr, at) is None:
            self.bad(expr, "is not KEYS[i] nor a derived key listed in DERIVED")

    def run(self) -> None:
        toks = self.script.toks
        for i in range(len(toks) - 3):
            if toks[i].text != "redis" or toks[i + 2].text not in ("call", "pcall"):
                continue
            close = _close(toks, i + 3)
            args = _split(toks[i + 4 : close])
            cmd = args[0]
            if len(cmd) != 1 or cmd[0].kind != "str":
                self.bad(cmd, "is not a literal command name")
                continue
            command = cmd[0].text.strip("'\"").upper()
            if command not in KEY_ARGS:
                self.bad(cmd, "is a command this check does not know: add its key positions")
                continue
            for pos in KEY_ARGS[command]:
                for arg in args[1:] if pos == _ALL else args[pos : pos + 1]:
                    self.check_key(arg, i)


def _lua_files() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text()
        for p in sorted(ROOT.glob("*/lua/*.lua"))
        if ".venv" not in p.parts
    }


def _inline_scripts() -> dict[str, str]:
    """Lua written as module-level string constants in the packages' Python."""
    out = {}
    for pkg in ("session", "router", "channels", "streams"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if (
                    isinstance(node, ast.Assign)
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                    and "redis.call" in node.value.value
                ):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            rel = path.relative_to(ROOT)
                            out[f"{rel}:{target.id}"] = node.value.value
    return out


def check(
    name: str, source: str, lib: str = "", used: set[tuple[str, str]] | None = None
) -> list[str]:
    """Violations of one script (with lib.lua in front when the loaders prepend it)."""
    used = set() if used is None else used
    c = Checker(parse(name, f"{lib}\n{source}" if lib else source), used)
    c.run()
    return sorted(set(c.violations))


def test_every_key_a_script_touches_is_declared_or_a_listed_derived_key() -> None:
    lib = (ROOT / "session" / "lua" / "lib.lua").read_text()
    scripts = {**_lua_files(), **_inline_scripts()}
    assert len(scripts) >= 30 and "router/lua/offer.lua" in scripts
    used: set[tuple[str, str]] = set()
    violations = []
    for name, source in scripts.items():
        with_lib = (
            name.startswith(("session/lua/", "router/lua/")) and name != "session/lua/lib.lua"
        )
        violations += check(name, source, lib if with_lib else "", used)
    assert not violations, "\n".join(violations)
    assert set(DERIVED) <= used, f"unused DERIVED entries: {sorted(set(DERIVED) - used)}"


def test_the_check_fails_on_a_script_that_builds_its_keys() -> None:
    """The scripts as they were before issue 9: keys from the prefix in ARGV."""
    old_accept = """
local p, offer, agent, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ok = p .. ':offer:' .. offer
local o = redis.call('HMGET', ok, 'conversation_id', 'agent_id')
local ck = p .. ':conv:' .. o[1]
redis.call('DEL', ok)
redis.call('SREM', p .. ':agent:' .. agent .. ':offers', offer)
redis.call('HSET', ck, 'state', 'assigned')
"""
    got = check("router/lua/old_accept.lua", old_accept)
    assert len(got) == 4, got
    # A suffix on a declared key is a key nobody declared; ARGV is a value, not a key.
    assert check("x.lua", "local ck = KEYS[1]\nredis.call('SADD', ck .. ':seen', ARGV[1])")
    assert check("x.lua", "redis.call('GET', ARGV[1])")
    # A parameter of a shared move is checked where the move is called.
    lib = "local function give_back(lk, a) redis.call('HINCRBY', lk, a, -1) end"
    assert check("x.lua", "give_back(ARGV[1] .. ':load', 'a')", lib)
    assert not check("x.lua", "local load_key = KEYS[1]\ngive_back(load_key, 'a')", lib)
    # A derived key not in DERIVED fails; one in DERIVED passes (and counts as used).
    derived = (
        "local function conv_key(id) return ARGV[1] .. id end\nredis.call('GET', conv_key('c'))"
    )
    assert check("router/lua/other.lua", derived)
    assert not check("router/lua/accept.lua", derived)
    # Every shipped script passes, so the test above is the one that matters; and a real
    # script with one key undone fails.
    offer = (ROOT / "router" / "lua" / "offer.lua").read_text()
    undone = offer.replace(
        "redis.call('SADD', agent_offers_key, offer)",
        "redis.call('SADD', p .. ':agent:' .. agent .. ':offers', offer)",
    )
    assert undone != offer
    assert check("router/lua/offer.lua", undone), "an unconverted key went unnoticed"


def test_the_key_prefix_is_one_hash_tag_so_derived_keys_share_the_declared_keys_slot() -> None:
    assert re.fullmatch(r"\{[^{}]+\}", keys.PREFIX), keys.PREFIX
    slots = set()
    for name, fn in inspect.getmembers(keys, inspect.isfunction):
        if fn.__module__ != keys.__name__ or name.startswith("_"):
            continue
        params = inspect.signature(fn).parameters.values()
        args = [1 if p.annotation in (int, "int") else "x}{y" for p in params]
        k = fn(*args)
        assert k.startswith(keys.PREFIX + ":"), (name, k)
        slots.add(key_slot(k.encode()))
    assert len(slots) == 1, slots
