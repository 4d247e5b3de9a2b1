"""``persys dns`` as a process: serves the zone from etcd and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from persys.dns import SkyRecord, name_to_key
from persys.store import Etcd
from persys.store.server import EtcdServer, free_port
from tests.support.eventually import eventually


async def test_persys_dns_command(etcd: Etcd, etcd_server: EtcdServer, tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "persys.cli.main", "--home", str(tmp_path), "dns", "--etcd", etcd_server.url,
        "--listen", f"127.0.0.1:{port}", "--zone", "test.zone",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        key = name_to_key("web.default.test.zone") + "/web-1"
        await etcd.put(key, SkyRecord(key, "127.0.0.5").encode())

        async def answers() -> list[str]:
            query = dns.message.make_query("web.default.test.zone", "A")
            try:
                response = await dns.asyncquery.udp(query, "127.0.0.1", timeout=0.5, port=port)
            except (dns.exception.Timeout, OSError):
                return []
            return [rd.to_text() for rrset in response.answer for rd in rrset]

        await eventually(answers, timeout=20)
        assert await answers() == ["127.0.0.5"]
        refused = await dns.asyncquery.udp(dns.message.make_query("web.default.persys.local", "A"), "127.0.0.1",
                                           timeout=2, port=port)
        assert refused.rcode() == dns.rcode.REFUSED
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, stderr.decode()[-2000:]
