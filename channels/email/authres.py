"""Whether a trusted mail system says an inbound mail really comes from its From domain.

A From header is a claim: anyone can write a customer's address into it. It becomes
evidence (``from.verified = ["email"]``) only when an ``Authentication-Results`` header
(RFC 8601) written by one of our own mail systems, named by its authserv-id in
OMNIROUTER_MAIL_TRUSTED_AUTHSERV, says ``dkim=pass`` for a signing domain aligned with the
From domain, or ``spf=pass`` for an envelope sender aligned with it (DMARC's relaxed
alignment: the same domain, or one a subdomain of the other).

Headers naming any other authserv-id are ignored, whatever they say: the sender wrote them.
The border MTA must remove incoming headers that carry our own authserv-id (RFC 8601
section 5; Postfix, rspamd and OpenDKIM do), or a sender could forge a pass.

Linear in the header's length (comments are skipped with a depth counter, never a regex).
"""

from __future__ import annotations

from collections.abc import Iterable

_ALIGNED_METHODS = {"dkim": ("header.d", "header.i"), "spf": ("smtp.mailfrom", "smtp.helo")}


def _strip_comments(value: str) -> str:
    out: list[str] = []
    depth, escaped = 0, False
    for ch in value:
        if escaped:
            escaped = False
            continue
        if ch == "\\" and depth:
            escaped = True
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out)


def _domain(value: str) -> str:
    """The domain of ``user@domain``, ``@domain`` or ``domain``, lower case, no quotes."""
    return value.strip().strip('"').rsplit("@", 1)[-1].strip().rstrip(".").lower()


def aligned(a: str, b: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    return bool(a and b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


def passes(header: str, trusted: Iterable[str], from_domain: str) -> str | None:
    """The method ("dkim" or "spf") that passed aligned with `from_domain`, if this one
    Authentication-Results header comes from a trusted authserv-id; else None."""
    parts = _strip_comments(header).split(";")
    head = parts[0].split()
    if not head or head[0].lower() not in {t.lower() for t in trusted}:
        return None
    for resinfo in parts[1:]:
        tokens = resinfo.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        method = method.strip().lower().split("/", 1)[0]
        if method not in _ALIGNED_METHODS or result.strip().lower() != "pass":
            continue
        for prop in tokens[1:]:
            name, _, value = prop.partition("=")
            if name.lower() in _ALIGNED_METHODS[method] and aligned(_domain(value), from_domain):
                return method
    return None


def verified_sender(headers: Iterable[str], trusted: Iterable[str], address: str) -> str | None:
    """The method that vouches for `address` among a mail's Authentication-Results headers."""
    trusted = tuple(t for t in trusted if t)
    if not trusted or "@" not in address:
        return None
    domain = _domain(address)
    for h in headers:
        method = passes(h, trusted, domain)
        if method:
            return method
    return None
