"""The name rules the API enforces, as Kubernetes' apimachinery validation writes them.

Object names and namespaces are DNS-1123 labels; label and annotation keys are qualified names
(an optional DNS-1123 subdomain prefix, ``/``, and a name of at most 63 characters); label
values are at most 63 characters of the same alphabet, or empty; environment variable names
are POSIX names. Each check returns None when the value is valid, else the message to show,
so a schema can report it under the field's path.
"""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_POSIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

NAME_MAX = 63  # a DNS label, the name part of a qualified name, a label value
SUBDOMAIN_MAX = 253
_ALPHABET = "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"


def check_dns1123(value: str) -> str | None:
    """None when ``value`` is a DNS-1123 label, else the message to show."""
    if DNS1123_LABEL.fullmatch(value):
        return None
    return "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending alphanumeric, at most 63"


def check_qualified_name(value: str) -> str | None:
    """None when ``value`` is a label or annotation key: ``name`` or ``prefix/name``."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix or len(prefix) > SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            return (f"prefix {prefix!r} must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
                    f"at most {SUBDOMAIN_MAX} characters (a key is name or prefix/name, e.g. example.com/tier)")
    if not name or len(name) > NAME_MAX or not _QUALIFIED_PART.fullmatch(name):
        return f"name part must be 1-{NAME_MAX} {_ALPHABET} (a key is name or prefix/name, e.g. example.com/tier)"
    return None


def check_label_value(value: str) -> str | None:
    """None when ``value`` is a label value: empty, or like a key's name part."""
    if value == "" or (len(value) <= NAME_MAX and _QUALIFIED_PART.fullmatch(value)):
        return None
    return f"must be empty or at most {NAME_MAX} {_ALPHABET}"


def check_env_name(value: str) -> str | None:
    """None when ``value`` is a POSIX environment variable name."""
    if _POSIX_NAME.fullmatch(value):
        return None
    return "must be a POSIX name: letters, digits and '_', not starting with a digit"
