"""Cluster DNS: SkyDNS records in etcd, the server that answers from them, API server SRV registration."""

from persys.dns.records import SkyRecord, key_to_name, name_to_key, workload_records, zone_prefix
from persys.dns.registration import ApiServerRegistration, register_api_server
from persys.dns.server import DnsServer

__all__ = ["ApiServerRegistration", "DnsServer", "SkyRecord", "key_to_name", "name_to_key",
           "register_api_server", "workload_records", "zone_prefix"]
