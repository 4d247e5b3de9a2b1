"""Persys: a Kubernetes-style orchestrator and operator framework on asyncio."""

__version__ = "0.1.0"
