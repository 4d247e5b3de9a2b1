"""Where a rollout stands (``persys.resources.deployments.progress``), row by row: what ``persys rollout
status`` says and the dashboard shows."""

from __future__ import annotations

from typing import Any

import pytest

from persys.resources import REGISTRY, Resource
from persys.resources.deployments import RolloutState, progress


def deployment(wanted: int = 3, *, generation: int = 2, paused: bool = False, **status: Any) -> Resource:
    obj = REGISTRY.parse({"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                          "spec": {"replicas": wanted, "paused": paused, "selector": {"matchLabels": {"app": "w"}},
                                   "template": {"metadata": {"labels": {"app": "w"}},
                                                "spec": {"image": "persys/busybox:local"}}}})
    obj.metadata.generation = generation
    obj.status.update({"observedGeneration": 2, **status})
    return obj


STALLED = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "no progress"}]


@pytest.mark.parametrize(("why", "obj", "state", "words"), [
    ("deadline missed, whatever else", deployment(paused=True, conditions=STALLED), RolloutState.STALLED,
     "exceeded its progress deadline: no progress"),
    ("a spec the controller has not seen", deployment(generation=3, updatedReplicas=3, replicas=3,
                                                      availableReplicas=3), RolloutState.WAITING, "to be observed"),
    ("paused", deployment(paused=True), RolloutState.PAUSED, "is paused"),
    ("new replicas still to make", deployment(updatedReplicas=1, replicas=3), RolloutState.PROGRESSING,
     "1 out of 3 new replicas"),
    ("old replicas still to remove", deployment(updatedReplicas=3, replicas=4), RolloutState.PROGRESSING,
     "1 old replicas are pending"),
    ("new replicas not yet available", deployment(updatedReplicas=3, replicas=3, availableReplicas=2),
     RolloutState.PROGRESSING, "2 of 3 updated replicas are available"),
    ("done", deployment(updatedReplicas=3, replicas=3, availableReplicas=3), RolloutState.COMPLETE,
     "successfully rolled out"),
    ("scaled to zero", deployment(0), RolloutState.COMPLETE, "successfully rolled out"),
])
def test_rollout_progress(why: str, obj: Resource, state: RolloutState, words: str) -> None:
    found = progress(obj)
    assert found.state == state and words in found.message, why


def test_progress_counts_and_percent() -> None:
    found = progress(deployment(4, updatedReplicas=3, readyReplicas=2, availableReplicas=1, replicas=5,
                                currentRevision=7))
    counts = (found.desired, found.updated, found.ready, found.available, found.total, found.revision)
    assert counts == (4, 3, 2, 1, 5, 7)
    assert found.percent(3) == 75 and found.percent(9) == 100
    assert progress(deployment(0)).percent(0) == 100
