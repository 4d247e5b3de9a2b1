"""Every string format a schema may name, row by row: valid values pass, hostile ones get a message."""

from __future__ import annotations

import pytest

from persys.resources.formats import FORMATS

VALID = [
    ("dns1123", "web-1"),
    ("labelkey", "app"), ("labelkey", "example.com/tier"), ("labelkey", "persys.dev/spec-hash"),
    ("labelkey", "A_b.c-D"), ("labelkey", "a" * 63), ("labelkey", "a" * 253 + "/b"),
    ("labelvalue", ""), ("labelvalue", "web"), ("labelvalue", "v1.2_x-Y"), ("labelvalue", "a" * 63),
    ("envname", "PATH"), ("envname", "_x1"), ("text", "any text, even ; rm -rf /"),
    ("image", "busybox"), ("image", "persys/busybox:local"), ("image", "127.0.0.1:5000/app/web:1.0"),
    ("image", "localhost/app@sha256:" + "a" * 64), ("image", "[::1]:5000/app"),
    ("gitrepo", "https://example.com/org/app.git"), ("gitrepo", "http://example.com/app"),
    ("gitrepo", "ssh://git@example.com:22/org/app.git"), ("gitrepo", "git://example.com/app"),
    ("gitrepo", "file:///tmp/persys-examples/hello-compose"), ("gitrepo", "git@github.com:org/app.git"),
    ("gitrepo", "example.com:org/app.git"), ("gitrepo", "/srv/git/app"),
    ("gitref", ""), ("gitref", "main"), ("gitref", "refs/tags/v1.0"), ("gitref", "feature/x-1"),
    ("gitref", "0123abcd"),
    ("abspath", "/"), ("abspath", "/srv/app"),
    ("innerpath", "."), ("innerpath", "deploy/prod"), ("innerpath", "a/../b"),
    ("cpu", "250m"), ("cpu", "0.5"), ("cpu", "1024"), ("memory", "64Mi"), ("memory", "16Ti"),
    ("cpucapacity", "4096"), ("memorycapacity", "64Ti"),
]

HOSTILE = [
    ("labelkey", "bad key!", "name part"), ("labelkey", "", "name part"), ("labelkey", "a" * 64, "name part"),
    ("labelkey", "-a", "name part"), ("labelkey", "Example.com/a", "prefix"), ("labelkey", "/a", "prefix"),
    ("labelkey", "a/b/c", "prefix"), ("labelkey", "a" * 254 + "/b", "prefix"), ("labelkey", "a/", "name part"),
    ("labelvalue", "a" * 64, "at most 63"), ("labelvalue", "a b", "at most 63"), ("labelvalue", "-a", "at most 63"),
    ("envname", "A=B", "POSIX"), ("envname", "1A", "POSIX"), ("envname", "", "POSIX"), ("envname", "A\0", "POSIX"),
    ("text", "a\0b", "NUL"),
    ("image", "; rm -rf /", "invalid reference format"), ("image", "Busybox", "must be lowercase"),
    ("image", "busybox:", "invalid reference format"), ("image", "-v", "invalid reference format"),
    ("image", "a" * 2000, "at most 1024"), ("image", "busybox@sha256:abc", "invalid"),
    ("gitrepo", "--upload-pack=touch /tmp/x", "must not start with '-'"), ("gitrepo", "-u", "'-'"),
    ("gitrepo", "ext::sh -c touch% /tmp/x", "not an allowed git URL"), ("gitrepo", "fd::17", "not an allowed"),
    ("gitrepo", "ftp://example.com/a", "scheme 'ftp'"), ("gitrepo", "https://", "needs a host"),
    ("gitrepo", "https://u:tok@example.com/a", "password"), ("gitrepo", "app", "not an allowed git URL"),
    ("gitrepo", "https://example.com/a\nb", "control characters"), ("gitrepo", "https://[::1/a", "not a valid URL"),
    ("gitref", "-b", "starts with '-'"), ("gitref", "main..x", "'..'"), ("gitref", "a b", "' '"),
    ("gitref", "a~1", "'~'"), ("gitref", "a^", "'^'"), ("gitref", "a:b", "':'"), ("gitref", "a?", "'?'"),
    ("gitref", "a*", "'*'"), ("gitref", "a[", "'['"), ("gitref", "a\\b", "'\\\\'"), ("gitref", "a\x7f", "'\\x7f'"),
    ("gitref", "a@{1}", "'@{'"), ("gitref", "@", "'@'"), ("gitref", "/a", "starts with '/'"),
    ("gitref", "a/", "ends with '/'"), ("gitref", "a//b", "'//'"), ("gitref", "a.", "ends with"),
    ("gitref", ".a", "starting with '.'"), ("gitref", "a/.b", "starting with '.'"), ("gitref", "a.lock", ".lock"),
    ("gitref", "a" * 256, "longer than 255"),
    ("abspath", "tmp", "absolute"), ("abspath", "", "absolute"), ("abspath", "/a\0", "NUL"),
    ("innerpath", "/etc", "not absolute"), ("innerpath", "..", "inside"), ("innerpath", "../../etc", "inside"),
    ("innerpath", "a/../../b", "inside"), ("innerpath", "a\0", "NUL"),
    ("cpu", "1025", "at most 1024 cores"), ("cpu", "9" * 400, "at most 1024 cores"), ("cpu", "inf", "invalid"),
    ("cpu", "1e3", "invalid"), ("cpu", "0.0001", "finer than 1m"), ("memory", "17Ti", "at most 16Ti"),
    ("memory", "9" * 400 + "Pi", "at most 16Ti"), ("memory", "nan", "invalid"),
    ("cpucapacity", "lots", "invalid"),
]


@pytest.mark.parametrize(("fmt", "value"), VALID)
def test_valid_values_pass(fmt: str, value: str) -> None:
    assert FORMATS[fmt](value) is None


@pytest.mark.parametrize(("fmt", "value", "message"), HOSTILE)
def test_hostile_values_are_refused_with_a_message(fmt: str, value: str, message: str) -> None:
    got = FORMATS[fmt](value)
    assert got is not None and message in got, got
