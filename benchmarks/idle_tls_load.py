"""Load of the lobby-idle scenario: `python -m benchmarks.idle_tls_load <json>`.

Opens `connections` TLS connections to a lobby (verifying its certificate),
says `hello` on each and waits for the reply, then holds them idle, with
the standard library's asyncio and ssl (no reactor, no vinom code on this
side). Commands on standard input, one JSON line each: `close` closes every
connection; end of input exits.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

from benchmarks.worker import emit, run_guarded


async def hold(settings: dict[str, Any]) -> None:
    context = ssl.create_default_context(cafile=settings["trust"])
    limit = asyncio.Semaphore(100)
    held: list[asyncio.StreamWriter] = []
    failed = 0

    async def one(index: int) -> None:
        nonlocal failed
        async with limit:
            try:
                reader, writer = await asyncio.open_connection(
                    settings["host"], settings["port"], ssl=context, server_hostname="localhost"
                )
                writer.write(json.dumps({"type": "hello", "name": f"idle{index}"}).encode() + b"\n")
                await reader.readline()
            except OSError:
                failed += 1
                return
            held.append(writer)

    await asyncio.gather(*(one(n) for n in range(int(settings["connections"]))))
    emit("held", connections=len(held), failed=failed)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if json.loads(line).get("type") == "close":
            for writer in held:
                writer.close()
            await asyncio.gather(*(w.wait_closed() for w in held), return_exceptions=True)
            held.clear()
            emit("closed")


def main() -> None:
    asyncio.run(hold(json.loads(sys.argv[1])))


if __name__ == "__main__":
    run_guarded(main)
