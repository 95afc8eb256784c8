"""T-L22 stacked templates outlive the webhook (issue 16 item 5), at the provider.

Gatekeeper calls the provider once per ConstraintTemplate that asks about an image and never
caches a ``systemError``. Behind a registry that accepts connections and never answers, every
call used to wait out ``server.deadlineSeconds`` again: six templates, six deadlines, far past
the webhook's 3 s. The provider now remembers a key whose verification ended transient for
``server.transientMemorySeconds`` and answers the next calls at once with the same
``systemError``, without asking the registry again.

Deterministic: what is asserted is that the registry is asked during the first call only, and
that every call gets the same ``systemError`` (Gatekeeper's through-the-engine timing is held by
``tests/gatekeeper/test_fail_closed.py::test_fail_six_templates_behind_a_stalled_registry_cost_one_deadline``).
One worker process: the memory is per process (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.images import push_test_image
from tests.fixtures.provider import ProviderProcess, start_provider
from tests.hardening._support import egress_env, new_key, provider_config, write_public_key

TEMPLATES = 6  # the shipped policies, each asking about the image


def _provider(tmp: Path, memory_seconds: float) -> ProviderProcess:
    extra = f"server: {{deadlineSeconds: 1.0, workers: 1, transientMemorySeconds: {memory_seconds}}}\n"
    cfg = provider_config(tmp, {"release-key": write_public_key(new_key(), tmp / "k.pub")}, extra=extra)
    env, _ = egress_env(tmp)
    return start_provider(tmp / "provider", cfg, env=env)


@pytest.fixture()
def stalled(ocireg: str, fault_proxy_factory: Any) -> Iterator[Any]:
    push_test_image(ocireg, "stacked/app", "v1")
    proxy = fault_proxy_factory(ocireg)
    proxy.set("stall")
    yield proxy
    proxy.clear()


def _admission(provider: ProviderProcess, key: str) -> list[dict[str, Any]]:
    """What one admission through six templates sends: six ProviderRequests for the same key."""
    return [provider.verify(key)["response"] for _ in range(TEMPLATES)]


def test_a_stall_is_paid_once_per_admission_not_once_per_template(tmp_path: Path, stalled: Any) -> None:
    provider = _provider(tmp_path, 30)
    try:
        key = f"{stalled.address}/stacked/app:v1"
        first = provider.verify(key)["response"]
        assert first["items"] == [] and key in first["systemError"] and "DEADLINE_EXCEEDED" in first["systemError"], first
        asked = sum(stalled.requests.values())
        assert asked > 0, "the provider never asked the registry: the check would be vacuous"
        rest = _admission(provider, key)[1:]
        assert rest == [first] * (TEMPLATES - 1)  # the same systemError, never an item Gatekeeper would cache
        assert sum(stalled.requests.values()) == asked, "a later template's call waited on the stalled registry again"
        # another key (another registry) is not affected by the memory
        other = provider.verify(f"127.0.0.1:{_closed_port()}/x:v1")["response"]
        assert "REGISTRY_UNREACHABLE" in other["systemError"], other
    finally:
        provider.stop()


def test_control_without_the_memory_every_template_asks_the_stalled_registry(tmp_path: Path, stalled: Any) -> None:
    """The memory off (0.001 s: gone before the next call; config.py does not take 0 yet): each
    of the six calls waits on the registry, as before the fix."""
    provider = _provider(tmp_path, 0.001)
    try:
        key = f"{stalled.address}/stacked/app:v1"
        counts = []
        for _ in range(TEMPLATES):
            response = provider.verify(key)["response"]
            assert key in response["systemError"]
            counts.append(sum(stalled.requests.values()))
        assert counts == sorted(counts) and len(set(counts)) == TEMPLATES, counts
    finally:
        provider.stop()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
