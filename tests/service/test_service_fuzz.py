"""Fuzzing the OpenAPI document with schemathesis against the real server: for every endpoint, no
server error (5xx) and every answer as documented (status, content type, schema). A few examples per
endpoint here; ``make fuzz`` runs many more (FACENET_KERAS_FUZZ_EXAMPLES) and checks that at least
FACENET_KERAS_FUZZ_MIN_REQUESTS requests were sent in all (the examples per endpoint alone do not
say how many requests a run makes: schemathesis stops early where it has nothing new to try)."""

from __future__ import annotations

import importlib.util
import os

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="fuzzing needs schemathesis (the test extra)")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("FACENET_KERAS_FUZZ_EXAMPLES", "3"))
MIN_REQUESTS = int(os.environ.get("FACENET_KERAS_FUZZ_MIN_REQUESTS", "0"))
SENT = {"requests": 0, "server_errors": 0}
LIVENESS = importlib.util.find_spec("facenet_keras.live") is not None


def _document() -> dict:
    """The app's OpenAPI document (building the app loads no model; the requests go to the live server)."""
    from facenet_keras.service.app import Settings, create_app

    return create_app(Settings(keys=os.devnull)).openapi()


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_as_documented(case, live_server):
    base, keys, _ = live_server
    if LIVENESS and "/liveness" in case.path:  # its landmark model loads after /readyz (503 until then)
        import httpx
        from service_helpers import wait_liveness

        with httpx.Client(base_url=base, timeout=30) as c:
            wait_liveness(c.get)
    response = case.call(base_url=base, headers={"Authorization": f"Bearer {keys['write']}"}, timeout=120)
    status = response.status_code
    SENT["requests"] += 1
    SENT["server_errors"] += status >= 500 and status != 501
    body = response.content[:300].decode("utf-8", "replace")  # thumbnails and results are binary
    if status == 501:  # only where this installation lacks a part, and says which
        assert not LIVENESS and "/liveness" in case.path, body
    else:
        assert status < 500, f"{case.method} {case.path}: {status} {body}"
    case.validate_response(
        response, checks=[status_code_conformance, content_type_conformance, response_schema_conformance]
    )


def test_enough_requests_were_sent(capsys):
    """Runs after the fuzzing above (same module): says how many requests it sent, and fails when
    fewer than FACENET_KERAS_FUZZ_MIN_REQUESTS (``make fuzz`` asks for 20,000)."""
    line = f"fuzz: {SENT['requests']} requests sent, {SENT['server_errors']} server errors"
    with capsys.disabled():  # the run's figure, in its output
        print("\n" + line)
    assert SENT["requests"] >= MIN_REQUESTS, line
