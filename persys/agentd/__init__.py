"""The node agent: an HMAC-authenticated HTTP API that drives containers on one node.

Runtimes: ``docker`` (aiodocker containers, docker-compose projects) and ``simulated``
(hollow nodes for scale tests). Never imports ``persys.controllers`` or ``persys.runtime``.
"""
