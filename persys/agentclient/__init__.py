"""The signing client controllers use to talk to node agents (never imports ``persys.agentd``)."""

from persys.agentclient.client import AgentClient

__all__ = ["AgentClient"]
