"""Print an agent's stream: `python -m channels.watch ws://127.0.0.1:8080/v1/agents/a1/stream`.

A minimal agent desktop for trying the system from a terminal; with --accept it accepts every
offer it sees, as the benchmark's agents do.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import orjson


async def watch(url: str, accept: bool) -> None:
    http_base = url.split("/v1/")[0].replace("ws", "http", 1)
    agent_id = url.rstrip("/").split("/")[-2]
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        print(f"connected to {url}", flush=True)
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = orjson.loads(msg.data)
            print(orjson.dumps(frame, option=orjson.OPT_INDENT_2).decode(), flush=True)
            if accept and frame.get("type") == "offer":
                async with s.post(
                    f"{http_base}/v1/offers/{frame['offer_id']}/accept", json={"agent_id": agent_id}
                ) as resp:
                    print(f"accept -> {resp.status} {await resp.text()}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--accept", action="store_true", help="accept every offer")
    args = p.parse_args()
    try:
        asyncio.run(watch(args.url, args.accept))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
