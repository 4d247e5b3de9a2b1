"""The operator SDK: decorate handlers on an ``Operator``, run it with ``persys operator run``.

Operators are their own processes: they list, watch and write through the API under a
certificate of role ``operators``, elect their leader on a ``Lease`` through the API, and never
touch etcd. Their handlers run on the same level-triggered ``persys.runtime.Controller`` the
built-in controllers use (see README, "Writing an operator").
"""

from persys.operator.context import Context
from persys.operator.errors import PermanentError, TemporaryError
from persys.operator.operator import Operator
from persys.operator.runner import Connection, OperatorRunner

__all__ = ["Connection", "Context", "Operator", "OperatorRunner", "PermanentError", "TemporaryError"]
