"""T-S2 (cloud metadata, extended; the row's new text is proposed to the lead): every cloud's documented metadata, credential and wire-server address is refused
before any connection, whatever ``registries.allowPrivate`` says, in every IPv6 form that stands
for an IPv4 address (IPv4-mapped, 6to4, NAT64, IPv4-compatible).

Refusal is proved with the connect recorder of ``test_ssrf.py``: the audit hook records every
``socket.connect`` and blocks any to a non-loopback address, and each test asserts none was made.
Names resolving to these addresses use a stub resolver answer (no DNS query is sent)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from stellaops import registry
from stellaops.registry import METADATA_ADDRESSES, RegistryPolicy
from tests.hardening.test_ssrf import _refused

# (address, whose) - each cloud's documented address (see the comments in registry.py)
DOCUMENTED = [
    ("169.254.169.254", "AWS/GCP/Azure/Oracle/OpenStack IMDS"),
    ("fd00:ec2::254", "AWS IMDS IPv6"),
    ("169.254.170.2", "AWS ECS task credentials"),
    ("169.254.170.23", "AWS EKS Pod Identity agent"),
    ("fd00:ec2::23", "AWS EKS Pod Identity agent IPv6"),
    ("fd20:ce::254", "GCP metadata IPv6"),
    ("168.63.129.16", "Azure wire server"),
    ("100.100.100.200", "Alibaba Cloud metadata"),
    ("192.0.0.192", "Oracle Cloud legacy metadata"),
    ("169.254.0.23", "Tencent Cloud metadata"),
    ("fd00:a9fe:a9fe::1", "Akamai/Linode metadata IPv6"),
    ("169.254.42.42", "Scaleway metadata"),
    ("fd00:42::42", "Scaleway metadata IPv6"),
]


def _literal(address: str) -> str:
    return f"[{address}]/app:v1" if ":" in address else f"{address}/app:v1"


@pytest.mark.parametrize(("address", "whose"), DOCUMENTED)
def test_documented_address_is_listed(address: str, whose: str) -> None:
    assert ipaddress.ip_address(address) in METADATA_ADDRESSES, whose


@pytest.mark.parametrize(("address", "whose"), DOCUMENTED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_metadata_literal_refused_before_connect(address: str, whose: str, allow_private: bool) -> None:
    err = _refused(_literal(address), allow_private=allow_private)
    assert err.reason == "REGISTRY_NOT_ALLOWED", whose
    assert "metadata" in err.detail or not allow_private


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:168.63.129.16",  # IPv4-mapped
        "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix: 169.254.169.254 through a DNS64/NAT64 gateway
        "64:ff9b::a83f:8110",  # NAT64 of 168.63.129.16
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::a83f:8110",  # IPv4-compatible 168.63.129.16
    ],
)
def test_ipv6_forms_of_metadata_refused_even_when_private_allowed(address: str) -> None:
    err = _refused(_literal(address), allow_private=True)
    assert err.reason == "REGISTRY_NOT_ALLOWED" and "metadata" in err.detail


def test_embedded_ipv4_leaves_ordinary_ipv6_alone() -> None:
    plain = ipaddress.ip_address("2001:db8::1")
    assert registry.embedded_ipv4(plain) == plain
    assert registry.embedded_ipv4(ipaddress.ip_address("::1")) == ipaddress.ip_address("::1")
    # a public address passes the check (no exception) when private targets are refused
    RegistryPolicy(allow_private=False).check_address(ipaddress.ip_address("2606:4700::1111"), "x")


@pytest.mark.parametrize("address", ["168.63.129.16", "192.0.0.192", "fd20:ce::254", "64:ff9b::a9fe:a9fe"])
def test_name_resolving_to_metadata_refused_before_connect(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "wire.stellaops.test":
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr: tuple[Any, ...] = (address, port, 0, 0) if ":" in address else (address, port)
            return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    err = _refused("wire.stellaops.test/app:v1", allow_private=True)
    assert err.reason == "REGISTRY_NOT_ALLOWED" and "metadata" in err.detail
