"""CPU and memory quantities as Kubernetes writes them (``250m``, ``2``, ``64Mi``, ``1G``).

CPU is kept in millicores and memory in bytes, so that the scheduler adds integers. Parsing is
exact (decimal, never float), so no digit string overflows; what a workload may request is bounded
(``CPU_REQUEST_LIMIT``, ``MEMORY_REQUEST_LIMIT``), what a node reports is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P|)$")
_MEMORY_UNITS = {
    "": 1,
    "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5,
}
CPU_REQUEST_LIMIT = (1024 * 1000, "1024 cores")  # what one workload may request: (amount, as said)
MEMORY_REQUEST_LIMIT = (16 * 1024**4, "16Ti")


def parse_cpu(value: str | int | float) -> int:
    """Millicores in a CPU quantity; raises ValueError naming the accepted forms."""
    text = str(value).strip()
    match = _CPU.match(text)
    if not match:
        raise ValueError(f"invalid cpu quantity {text!r}: use cores (0.5, 2) or millicores (250m)")
    number, milli = Decimal(match.group(1)), match.group(2)
    millicores = number if milli else number * 1000
    if millicores != int(millicores):
        raise ValueError(f"invalid cpu quantity {text!r}: finer than 1m")
    return int(millicores)


def parse_memory(value: str | int | float) -> int:
    """Bytes in a memory quantity; raises ValueError naming the accepted suffixes."""
    text = str(value).strip()
    match = _MEMORY.match(text)
    if not match:
        raise ValueError(f"invalid memory quantity {text!r}: use bytes or a suffix Ki, Mi, Gi, Ti, k, M, G, T")
    return int(Decimal(match.group(1)) * _MEMORY_UNITS[match.group(2)])


def check_quantity(parse: Callable[[str], int], value: str, limit: tuple[int, str] | None = None) -> str | None:
    """None when ``parse`` accepts ``value`` (within ``limit``: amount and how to say it), else the message."""
    try:
        amount = parse(value)
    except ValueError as e:
        return str(e)
    return f"must be at most {limit[1]}" if limit and amount > limit[0] else None


def format_cpu(millicores: int) -> str:
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(size: int) -> str:
    for suffix, unit in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % unit == 0 and size >= unit:
            return f"{size // unit}{suffix}"
    return str(size)
