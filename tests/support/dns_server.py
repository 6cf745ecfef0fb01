"""A real DNS server on a loopback address (UDP port 53) for a service process whose
/etc/resolv.conf points at it: names under `answered` resolve to 127.0.0.1 (AAAA: no address),
names under `silent` are never answered, like a zone whose nameservers are down."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

ANSWERED = "answered.test"
SILENT = "silent.test"
_A, _AAAA = 1, 28


def parse_query(data: bytes) -> tuple[int, str, int, bytes]:
    """(id, lower-case name, type, the question section as sent) of a DNS query; ValueError if
    it is not one (no compression in questions, as resolvers send them)."""
    if len(data) < 12:
        raise ValueError("short message")
    query_id, _flags, questions = struct.unpack("!HHH", data[:6])
    if questions != 1:
        raise ValueError("not one question")
    offset, labels = 12, []
    while True:
        if offset >= len(data):
            raise ValueError("truncated name")
        length = data[offset]
        if length == 0:
            break
        if length > 63:
            raise ValueError("compressed or invalid label")
        labels.append(data[offset + 1 : offset + 1 + length].decode("ascii", "replace").lower())
        offset += 1 + length
    end = offset + 5
    if end > len(data):
        raise ValueError("truncated question")
    (qtype,) = struct.unpack("!H", data[offset + 1 : offset + 3])
    return query_id, ".".join(labels), qtype, data[12:end]


class DnsServer(asyncio.DatagramProtocol):
    """Counts the queries it saw per name; answers or stays silent as the module says."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.queries: Counter[str] = Counter()
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.address, 53))

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def resolv_conf(self, path: Path) -> Path:
        """A resolv.conf naming only this server, with glibc's default timeouts (5 s, 2 tries)."""
        path.write_text(f"nameserver {self.address}\noptions timeout:5 attempts:2\n")
        return path

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            query_id, name, qtype, question = parse_query(data)
        except ValueError:
            return
        self.queries[name] += 1
        if name == SILENT or name.endswith("." + SILENT):
            return
        known = name == ANSWERED or name.endswith("." + ANSWERED)
        answers = b""
        if known and qtype == _A:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", _A, 1, 60, 4) + bytes([127, 0, 0, 1])
        rcode = 0 if known else 3  # NXDOMAIN for anything else
        header = struct.pack("!HHHHHH", query_id, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
        assert self._transport is not None
        self._transport.sendto(header + question + answers, addr)


def loopback_address_for_worker() -> str:
    """A loopback address of this test process's own, so that parallel workers' servers (all on
    port 53) do not meet."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"127.53.{number % 250}.{os.getpid() % 250 + 1}"


def resolv_conf_wrapper(resolv_conf: Path, command: list[str]) -> list[str]:
    """`command` in a mount namespace of its own whose /etc/resolv.conf is `resolv_conf`."""
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(resolv_conf), *command]


def can_swap_resolv_conf() -> str | None:
    """None if this machine lets a process see its own /etc/resolv.conf (root, unshare, a
    resolv.conf to mount over), else why not."""
    if os.geteuid() != 0:
        return "needs root (a mount namespace and port 53)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    if not Path("/etc/resolv.conf").exists():
        return "no /etc/resolv.conf to mount over"
    probe = subprocess.run(
        resolv_conf_wrapper(Path("/etc/resolv.conf"), [sys.executable, "-c", "pass"]),
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare --mount failed: {probe.stderr.decode(errors='replace').strip()}"
    return None
