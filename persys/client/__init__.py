"""The API client used by the CLI, agents and tests: any registered kind, over mTLS."""

from persys.client.api import ApiClient, WatchItem

__all__ = ["ApiClient", "WatchItem"]
