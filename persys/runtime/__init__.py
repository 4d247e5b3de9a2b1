"""The controller framework: informers, work queues, controllers, leader election, the manager.

Persys's own controllers are built on it, and so can yours (see README, "Writing a controller").
"""

from persys.runtime.backoff import Backoff
from persys.runtime.clock import Clock, FakeClock, SystemClock
from persys.runtime.controller import Controller, Result
from persys.runtime.informer import Informer
from persys.runtime.leader import LeaderElector
from persys.runtime.manager import Manager
from persys.runtime.supervisor import Component, Health, Named, Service, Supervisor
from persys.runtime.workqueue import WorkQueue

__all__ = ["Backoff", "Clock", "Component", "Controller", "FakeClock", "Health", "Informer", "LeaderElector",
           "Manager", "Named", "Result", "Service", "Supervisor", "SystemClock", "WorkQueue"]
