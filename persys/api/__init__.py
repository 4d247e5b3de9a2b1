"""The API server: Kubernetes-shaped HTTP over etcd, a plain listener and an mTLS listener."""

from persys.api.app import build_app
from persys.api.context import API_CONTEXT, ApiContext, api_context
from persys.api.server import ApiServer

__all__ = ["API_CONTEXT", "ApiContext", "ApiServer", "api_context", "build_app"]
