"""The API server's audit trail: one ``audit.k8s.io/v1`` Event per request, at the policy's level.

``policy`` decides the level, ``event`` builds the event, ``auditor`` is the middleware and owns the
sinks (``filesink``: JSON lines under ``$PERSYS_HOME/audit/``; ``loki``: Loki's push API), ``query``
is the admin route ``persys audit`` reads the trail through.
"""
