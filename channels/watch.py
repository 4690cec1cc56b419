"""Print an agent's stream: `python -m channels.watch --token T ws://127.0.0.1:8080/v1/agents/a1/stream`.

A minimal agent desktop for trying the system from a terminal; with --accept it accepts every
offer it sees, as the benchmark's agents do. The token is the agent's own (`make run` prints
the sample agents'; `POST /v1/agents/{id}/token` mints one); OMNIROUTER_TOKEN works too.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import aiohttp
import orjson


async def watch(url: str, accept: bool, token: str) -> None:
    http_base = url.split("/v1/")[0].replace("ws", "http", 1)
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=auth) as ws:
        print(f"connected to {url}", flush=True)
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = orjson.loads(msg.data)
            print(orjson.dumps(frame, option=orjson.OPT_INDENT_2).decode(), flush=True)
            if accept and frame.get("type") == "offer":
                async with s.post(
                    f"{http_base}/v1/offers/{frame['offer_id']}/accept", json={}, headers=auth
                ) as resp:
                    print(f"accept -> {resp.status} {await resp.text()}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--accept", action="store_true", help="accept every offer")
    p.add_argument("--token", default=os.environ.get("OMNIROUTER_TOKEN", ""), help="agent token")
    args = p.parse_args()
    if not args.token:
        p.error("give the agent's token with --token (or OMNIROUTER_TOKEN)")
    try:
        asyncio.run(watch(args.url, args.accept, args.token))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
