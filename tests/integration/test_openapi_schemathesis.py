"""schemathesis against the real app (WSGI, in process): no 500s, responses match the
OpenAPI document the package ships. Registry traffic: the generated keys are random strings;
anything that parses as a reference is refused before connecting (allow-list: loopback only,
and the loopback registry below answers 404 quickly)."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from stellaops.app import create_app  # noqa: E402
from stellaops.config import parse_config  # noqa: E402


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, ocireg: str):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("openapi")
    token = d / "acme.token"
    token.write_text("acme-token-0123456789abcdef")
    cfg = parse_config(
        f"registries: {{allow: ['{ocireg}'], allowPrivate: true}}\n"
        f"store: {{dsn: 'sqlite:///{d}/s.db'}}\n"
        f"importApi: {{tokens: [{{tenant: acme, tokenFile: {token}}}]}}\n"
        "server: {deadlineSeconds: 1.0}\n"
        "logging: {level: ERROR}\n",
        env={},
    )
    return create_app(cfg)


def test_no_server_errors_and_conforming_responses(app) -> None:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/openapi.yaml", app)
    failures: list[str] = []
    calls: list[str] = []
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case):  # type: ignore[no-untyped-def]
            response = case.call()
            calls.append(case.path)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {response.text[:200]}")
            case.validate_response(response)  # status codes, content types and bodies as documented

        run()
    assert failures == []
    # every operation but the schema document itself was exercised
    assert {"/gatekeeper/v1/verify", "/api/v1/attestations/import", "/healthz", "/readyz", "/metrics"} <= set(calls)
    assert len(calls) >= 60
