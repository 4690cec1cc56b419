"""The trust boundary, route by route: 401 without a credential, 403 with another scope's, and
no agent reaches another agent's stream, offers or conversations."""

from __future__ import annotations

import aiohttp
import pytest

from channels.access import ACCESS
from channels.auth import COOKIE, Scope
from tests.conftest import ADMIN_TOKEN, INBOUND_TOKEN, OPS_TOKEN, Services
from tests.integration.helpers import AgentStream, Api, uid

pytestmark = pytest.mark.integration

GUARDED = sorted((m, p) for (m, p), r in ACCESS.items() if not r.public)


def _concrete(path: str, agent_id: str) -> str:
    return (
        path.replace("{agent_id}", agent_id)
        .replace("{channel}", "chat")
        .replace("{offer_id}", "o-none")
        .replace("{conversation_id}", "c-none")
        .replace("{customer_id}", "C-none")
        .replace("{survey_id}", "sv-none")
        .replace("{task_id}", "t-none")
        .replace("{code}", "161606")
        .replace("{article_id}", "kb-none")
        .replace("{order_id}", "o-none")
    )


async def _credentials(api: Api) -> dict[Scope, str]:
    agent = uid("a")
    await api.add_agent(agent)
    code, sup = await api.call("POST", "/v1/tokens", {"scope": "supervisor", "name": "sup-1"})
    assert code == 201, sup
    return {
        Scope.ADMIN: ADMIN_TOKEN,
        Scope.OPS: OPS_TOKEN,
        Scope.SYSTEM: INBOUND_TOKEN,
        Scope.SUPERVISOR: sup["token"],
        Scope.AGENT: await api.as_agent(agent),
    }


async def test_every_guarded_route_is_401_without_and_403_with_another_scope(api: Api) -> None:
    creds = await _credentials(api)
    agent_id = uid("a")  # a path agent that is not the calling agent
    checked = 0
    for method, path in GUARDED:
        url = _concrete(path, agent_id)
        code, body = await api.call(method, url, {} if method != "GET" else None, token="")
        assert code == 401, (method, path, body)
        assert body["error"]["code"] == "unauthenticated"
        for scope, token in creds.items():
            if scope in ACCESS[(method, path)].scopes:
                continue
            code, body = await api.call(method, url, {} if method != "GET" else None, token=token)
            assert code == 403, (method, path, scope, body)
            checked += 1
    assert checked > 40  # the matrix really ran


async def test_an_unknown_or_revoked_token_is_401(api: Api) -> None:
    agent = uid("a")
    await api.add_agent(agent)
    token = await api.as_agent(agent)
    code, who = await api.call("GET", "/v1/session", token=token)
    assert code == 200 and who["scope"] == "agent" and who["subject"] == agent
    code, body = await api.call("DELETE", f"/v1/agents/{agent}/token")
    assert code == 200 and body["revoked"] == 1
    code, body = await api.call("GET", "/v1/session", token=token)
    assert code == 401, body
    code, body = await api.call("GET", "/v1/session", token="omr_age_not-a-token")
    assert code == 401, body


async def test_an_agent_reaches_only_its_own_stream_offers_and_conversations(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    mine, other = uid("a"), uid("a")
    await api.add_agent(mine)
    await api.add_agent(other, status="away")
    stream = await AgentStream.open(http, services.ws_url, mine)
    await api.post_message("chat", "我的赎回什么时候到账", {"visitor_id": uid("v")})
    offer = await stream.next("offer")
    conv = offer["conversation_id"]
    theirs = await api.as_agent(other)

    # Another agent can neither open my stream nor read my agent record.
    async with http.get(
        f"{services.gateway_url}/v1/agents/{mine}/stream",
        headers={"Authorization": f"Bearer {theirs}"},
    ) as resp:
        assert resp.status == 403
    code, _ = await api.call("GET", f"/v1/agents/{mine}", token=theirs)
    assert code == 403
    # … nor accept my offer, nor read the conversation, nor act in my name.
    code, body = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {}, token=theirs)
    assert code == 403 and body["error"]["code"] == "offer_not_yours", body
    code, body = await api.call("GET", f"/v1/conversations/{conv}", token=theirs)
    assert code == 403, body
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": mine}, token=theirs
    )
    assert code == 403 and body["error"]["field"] == "agent_id", body

    # My own credential does all of it; the body may omit agent_id.
    mine_token = await api.as_agent(mine)
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {}, token=mine_token
    )
    assert code == 200 and body["agent_id"] == mine, body
    code, body = await api.call("GET", f"/v1/conversations/{conv}", token=mine_token)
    assert code == 200, body
    code, body = await api.call(
        "POST", f"/v1/conversations/{conv}/reply", {"text": "您好"}, token=mine_token
    )
    assert code == 202, body
    # A supervisor sees it and may move it, the holder taken from the state.
    code, sup = await api.call("POST", "/v1/tokens", {"scope": "supervisor", "name": "sup"})
    code, body = await api.call("GET", f"/v1/conversations/{conv}", token=sup["token"])
    assert code == 200
    code, body = await api.call(
        "POST",
        f"/v1/conversations/{conv}/transfer",
        {"to_queue": "transaction", "note": "请跟进"},
        token=sup["token"],
    )
    assert code == 200, body
    await stream.next("assignment_ended")
    await stream.close()


async def test_a_browser_uses_a_one_time_ticket_or_the_login_cookie(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    agent = uid("a")
    await api.add_agent(agent)
    token = await api.as_agent(agent)
    code, t = await api.call("POST", "/v1/tickets", token=token)
    assert code == 201, t
    url = f"{services.ws_url}/v1/agents/{agent}/stream?ticket={t['ticket']}"
    ws = await http.ws_connect(url)
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello" and hello["agent_id"] == agent
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:  # the ticket was used up
        await http.ws_connect(url)
    assert err.value.status == 401

    # The desk's login: the token once, then an HttpOnly cookie that the socket carries.
    # unsafe=True: aiohttp keeps no cookies for IP hosts otherwise (browsers do).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(
            f"{services.gateway_url}/v1/session", json={"token": token}
        ) as resp:
            assert resp.status == 200
            cookie = resp.cookies[COOKIE]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        ws = await browser.ws_connect(f"{services.ws_url}/v1/agents/{agent}/stream")
        hello = await ws.receive_json(timeout=10)
        assert hello["agent_id"] == agent
        await ws.close()
        async with browser.post(
            f"{services.gateway_url}/v1/agents/{agent}/status",
            json={"status": "away"},
            headers={"Origin": "https://evil.example"},
        ) as resp:
            assert resp.status == 403  # a cookie-authenticated change from another origin
