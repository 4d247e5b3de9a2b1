"""Persys's controllers: scheduler, reconciler, monitor (and the DNS registrar), on persys.runtime."""

from persys.controllers.config import ControllersConfig
from persys.controllers.manager import build_manager

__all__ = ["ControllersConfig", "build_manager"]
