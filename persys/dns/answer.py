"""Authoritative answers for the cluster zone: a DNS query in, a response out, no I/O.

Answers A, AAAA, SRV and SOA from the record cache, the way the CoreDNS etcd plugin reads
SkyDNS records: a name's records are those at its key or below it. SRV answers carry the
address records of their targets in the additional section. Absent names answer NXDOMAIN,
names that exist without the asked type NOERROR with no answer (NODATA); both carry the
zone's SOA in authority so that resolvers cache the negative answer. Names outside the zone
are REFUSED: this server is never an open resolver.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from prometheus_client import Counter

from persys.dns.cache import RecordCache
from persys.dns.records import SkyRecord, is_ip

QUERIES = Counter("persys_dns_queries_total", "DNS queries answered, by query type and response code",
                  ["qtype", "rcode"])

SOA_TTL = 30
NEGATIVE_TTL = 30
SERVER_PAYLOAD = 1232  # the EDNS buffer size recommended by DNS flag day 2020


class Responder:
    """Builds the response to one query for ``zone`` from ``cache``."""

    def __init__(self, cache: RecordCache, zone: str) -> None:
        self.cache = cache
        self.zone = dns.name.from_text(zone.rstrip(".").lower() + ".")

    def respond(self, query: dns.message.Message) -> dns.message.Message:
        """The response (rcode, flags and sections set); counts it in persys_dns_queries_total."""
        response = dns.message.make_response(query, our_payload=SERVER_PAYLOAD)
        qtype = "NONE"
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        else:
            question = query.question[0]
            qtype = dns.rdatatype.to_text(question.rdtype)
            self._answer(question.name, question.rdtype, question.rdclass, response)
        QUERIES.labels(qtype=qtype, rcode=dns.rcode.to_text(response.rcode())).inc()
        return response

    def _answer(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType,
                rdclass: dns.rdataclass.RdataClass, response: dns.message.Message) -> None:
        if rdclass != dns.rdataclass.IN or not qname.is_subdomain(self.zone):
            response.set_rcode(dns.rcode.REFUSED)
            return
        if not self.cache.ready.is_set():
            response.set_rcode(dns.rcode.SERVFAIL)
            return
        response.flags |= dns.flags.AA
        name = qname.to_text(omit_final_dot=True).lower()
        if qname == self.zone:
            if rdtype in (dns.rdatatype.SOA, dns.rdatatype.ANY):
                response.answer.append(self.soa())
            else:
                response.authority.append(self.soa())
            return
        records = list(self.cache.subtree(name))
        if not records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self.soa())
            return
        if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            self._addresses(qname, rdtype, records, response.answer)
        elif rdtype == dns.rdatatype.SRV:
            self._srv(qname, records, response)
        if not response.answer:
            response.authority.append(self.soa())

    def soa(self) -> dns.rrset.RRset:
        """The zone's SOA; its serial follows the etcd revision the cache has seen."""
        serial = self.cache.revision % 2**32
        origin = self.zone.to_text()
        text = f"ns.dns.{origin} hostmaster.{origin} {serial} 7200 1800 86400 {NEGATIVE_TTL}"
        return dns.rrset.from_text(self.zone, SOA_TTL, "IN", "SOA", text)

    @staticmethod
    def _addresses(owner: dns.name.Name, rdtype: dns.rdatatype.RdataType, records: list[SkyRecord],
                   into: list[dns.rrset.RRset]) -> None:
        """A or AAAA records at ``owner`` for every record whose host is an address of that family."""
        family = 4 if rdtype == dns.rdatatype.A else 6
        hosts: dict[str, int] = {}
        for record in records:
            if is_ip(record.host) and (":" in record.host) == (family == 6):
                hosts.setdefault(record.host, record.ttl)
        if hosts:
            rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, rdtype)
            for host, ttl in sorted(hosts.items()):
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rdtype, host), ttl)
            into.append(rrset)

    def _srv(self, owner: dns.name.Name, records: list[SkyRecord], response: dns.message.Message) -> None:
        """SRV for every record with a port; the targets' addresses go in the additional section."""
        srv = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.SRV)
        extra: dict[dns.name.Name, list[SkyRecord]] = {}
        for record in records:
            if record.port <= 0:
                continue
            target = dns.name.from_text(record.target + ".")
            text = f"{record.priority} {record.weight} {record.port} {target.to_text()}"
            srv.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, text), record.ttl)
            if is_ip(record.host):
                extra.setdefault(target, []).append(record)
            elif target.is_subdomain(self.zone):
                extra.setdefault(target, []).extend(self.cache.subtree(record.target))
        if not srv:
            return
        response.answer.append(srv)
        for target, found in sorted(extra.items()):
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                self._addresses(target, rdtype, found, response.additional)
