"""A DNS resolver that answers from a table (a test double of the outside world)."""

from __future__ import annotations

import asyncio
import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class StaticDNS(AbstractResolver):
    """Answers names from a table, like a DNS server an attacker controls; records lookups."""

    def __init__(self, answers: dict[str, list[str]], *, delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.lookups: list[str] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        await asyncio.sleep(self.delay)
        if host not in self.answers:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        self.closed = True
