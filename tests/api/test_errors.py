"""The error hierarchy's HTTP mapping: class codes, the one responder, remote decoding, TerminalError."""

from __future__ import annotations

import json

import pytest

from persys import errors
from persys.errors import (
    AgentError,
    BadRequest,
    Cause,
    Conflict,
    Invalid,
    MethodNotAllowed,
    NotFound,
    NotLeader,
    PersysError,
    StoreUnavailable,
    TerminalError,
    Unavailable,
    error_class,
    from_status,
)
from persys.httpedge import decode_json, respond

CODES = {
    "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "MethodNotAllowed": 405,
    "Conflict": 409, "NotLeader": 409, "Gone": 410, "TooLarge": 413, "Invalid": 422, "PersysError": 500,
    "RuntimeFailure": 500, "AgentError": 502, "Unavailable": 503, "StoreUnavailable": 503,
}


def test_each_class_states_its_code_once() -> None:
    classes = {name: cls for name, cls in vars(errors).items()
               if isinstance(cls, type) and issubclass(cls, PersysError)}
    assert {name: cls.code for name, cls in classes.items()} == CODES
    for cls in classes.values():
        assert "code" not in vars(cls(message="x")), cls  # no instance ever carries a code of its own


def answer(error: BaseException) -> tuple[int, dict[str, object]]:
    response = respond(error)
    assert isinstance(response.body, bytes)
    return response.status, json.loads(response.body)


def test_respond_uses_the_class_code_and_keeps_the_status_shape() -> None:
    status, body = answer(Invalid("spec.image: required", causes=[Cause("spec.image", "required")]))
    assert status == 422
    assert body == {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422, "reason": "Invalid",
                    "message": "spec.image: required",
                    "details": {"causes": [{"field": "spec.image", "message": "required"}]}}
    assert answer(MethodNotAllowed("no"))[0] == 405 and answer(StoreUnavailable("etcd"))[0] == 503


def test_anything_else_is_an_internal_500_naming_only_its_type() -> None:
    status, body = answer(KeyError("secret detail"))
    assert (status, body["reason"], body["message"]) == (500, "InternalError", "internal error: KeyError")


def test_terminal_error_wraps_its_cause_and_is_not_an_http_error() -> None:
    cause = NotFound("workload gone")
    wrapped = TerminalError(cause)
    assert wrapped.cause is cause and wrapped.__cause__ is cause and "workload gone" in str(wrapped)
    try:
        try:
            raise Conflict("stale")
        except Conflict as e:
            raise TerminalError("cannot win this race") from e
    except TerminalError as e:
        assert isinstance(e.cause, Conflict) and str(e) == "cannot win this race"
    assert TerminalError("just a reason").cause is None
    assert not isinstance(wrapped, PersysError)
    status, body = answer(wrapped)  # the cause's 404 does not leak through: a controller signal is no answer
    assert (status, body["message"]) == (500, "internal error: TerminalError")


@pytest.mark.parametrize("error", [BadRequest("b"), NotFound("n"), MethodNotAllowed("m"), Conflict("c"),
                                   Invalid("i", causes=[Cause("f", "bad")]), AgentError("a"), Unavailable("u"),
                                   PersysError("p")])
def test_a_status_body_decodes_to_the_same_class(error: PersysError) -> None:
    back = from_status(error.to_status(), error.code)
    assert (type(back), back.code, back.reason, back.message, back.causes) == \
           (type(error), error.code, error.reason, error.message, error.causes)


def test_remote_classes_by_reason_then_code() -> None:
    assert error_class(409, "NotLeader") is Conflict  # another process's lease is not the caller's
    assert error_class(503, "ServiceUnavailable") is Unavailable
    assert error_class(404, "SomethingNew") is NotFound
    assert error_class(418) is BadRequest and error_class(504) is PersysError
    assert from_status({"reason": "NotLeader", "code": 409, "message": "lost"}, 409).code == 409
    assert NotLeader("x").code == 409


def test_decode_json_refuses_depth_before_anything_recurses() -> None:
    assert decode_json(b'{"a": [[1]]}') == {"a": [[1]]}
    assert decode_json("[" * 64 + "]" * 64) is not None
    for raw in ("[" * 65 + "]" * 65, "[" * 100_000, '{"a": ' * 100_000):
        with pytest.raises(BadRequest, match="nests deeper than 64 levels"):
            decode_json(raw)
    with pytest.raises(BadRequest, match="not valid JSON"):
        decode_json(b"{nope")

