"""The rate limiter's fallback and the client address it keys by: the pure parts of limits."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import make_mocked_request

from channels.limits import Limited, RateLimiter, client_address
from channels.settings import LimitSettings, Rate
from streams.devkit import embedded


async def test_without_redis_trusted_credentials_pass_and_anonymous_sources_stay_limited() -> None:
    """Redis away (a client on a port nobody listens on): a configured credential is never
    held back (fail open), an anonymous source keeps its rate in this process (fail closed)."""
    settings = LimitSettings(login=Rate(2, 60.0), trusted=Rate(1, 60.0))
    dead = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{embedded.free_port()}/0", socket_connect_timeout=0.5
    )
    limiter = RateLimiter(dead, settings)
    try:
        for _ in range(5):
            await limiter.check("login", "admin:admin", trusted=True)
        await limiter.check("login", "addr:203.0.113.7")
        await limiter.check("login", "addr:203.0.113.7")
        with pytest.raises(Limited) as exc:
            await limiter.check("login", "addr:203.0.113.7")
        assert int(exc.value.retry_after) >= 1
        await limiter.check("login", "addr:203.0.113.8")  # another source has its own bucket
    finally:
        await dead.aclose()


def test_rates_parse_and_off_removes_a_limit() -> None:
    """ "30/m" is a bucket of 30 refilled at 30 a minute; "off" is no limit; nonsense exits."""
    assert Rate.parse("X", "30/m") == Rate(30, 60.0)
    assert Rate.parse("X", "200/s") == Rate(200, 1.0)
    assert Rate.parse("X", "off") is None
    with pytest.raises(SystemExit):
        Rate.parse("X", "lots")


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("198.51.100.1", "203.0.113.9", (), "198.51.100.1"),  # not behind a proxy: ignored
        ("198.51.100.1", "203.0.113.9", ("10.0.0.0/8",), "198.51.100.1"),  # not our proxy
        ("10.0.0.5", "203.0.113.9", ("10.0.0.0/8",), "203.0.113.9"),
        ("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.7", ("10.0.0.0/8",), "203.0.113.9"),
        ("10.0.0.5", "garbage", ("10.0.0.0/8",), "10.0.0.5"),
    ],
)
def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    peer: str, xff: str, trusted: tuple[str, ...], expected: str
) -> None:
    """The client is the peer, unless the peer is one of our proxies: then the last hop of
    X-Forwarded-For that is not ours (what came before it is whatever the client wrote)."""
    req = make_mocked_request(
        "GET", "/", headers={"X-Forwarded-For": xff}, transport=_Transport(peer)
    )
    assert client_address(req, trusted) == expected


class _Transport:
    def __init__(self, peer: str):
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 1234) if name == "peername" else default


def test_every_limited_route_exists_and_has_an_access_rule() -> None:
    """A rate rule for a route that does not exist would protect nothing."""
    from channels.access import ACCESS
    from channels.limits import LIMITED

    assert set(LIMITED) <= set(ACCESS)
    assert {rule for rule in LIMITED.values()} <= {"inbound", "survey", "login", "sockets"}
