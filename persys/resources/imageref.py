"""Image references checked against Docker's grammar before anything is stored.

An image is passed to Docker on every node; a value Docker cannot parse (``; rm -rf /``, an
uppercase repository, a dangling ``:``) would only fail there, later and out of sight. The grammar
is distribution/reference's, through ``docker_image`` (a port of it), normalized as the Docker CLI
does, so ``busybox``, ``persys/busybox:local`` and ``127.0.0.1:5000/app@sha256:…`` pass.
"""

from __future__ import annotations

from docker_image import reference

MAX_LENGTH = 1024  # name (255) + tag (128) + digest, with room to spare; keeps the parse cheap


def check_image(value: str) -> str | None:
    """None when ``value`` is an image reference Docker accepts, else the message to show.

    Empty is left to the kind's own rule (a container needs an image, a compose app has none)."""
    if not value:
        return None
    if len(value) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    try:
        reference.Reference.parse_normalized_named(value)
    except reference.InvalidReference as e:
        return f"{e} (an image reference is [registry[:port]/]name[:tag][@digest], e.g. busybox:1.36)"
    return None
