"""IP addresses and CIDR blocks as AWS reads them.

An address is (bits, value): bits is 32 or 128. IPv4-mapped IPv6 addresses count as IPv4, as in Java.
A CIDR block covers [address, address | host bits]: AWS does not clear the host bits of the base.
"""

from __future__ import annotations

import ipaddress
import re

_IPV4_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV6_RE = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*")
_MASK_RE = re.compile(r"[+-]?[0-9]+")
INT32_MAX = 2**31 - 1


class CidrError(ValueError):
    """A malformed CIDR or address; str(exc) is AWS's reason."""


def looks_like_ip(text: str) -> bool:
    return bool(_IPV4_RE.fullmatch(text) or _IPV6_RE.fullmatch(text))


def parse_ip(text: str) -> tuple[int, int] | None:
    """(bits, value) for an IPv4/IPv6 literal, None for anything else."""
    if _IPV4_RE.fullmatch(text):
        octets = text.split(".")
        if any(len(octet) > 1 and octet[0] == "0" for octet in octets):
            return None
        values = [int(octet) for octet in octets]
        if any(value > 255 for value in values):
            return None
        return 32, (values[0] << 24) | (values[1] << 16) | (values[2] << 8) | values[3]
    if _IPV6_RE.fullmatch(text):
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError:
            return None
        if address.ipv4_mapped is not None:
            return 32, int(address.ipv4_mapped)
        return 128, int(address)
    return None


def _java_split_slash(text: str) -> list[str]:
    if text == "":
        return [""]
    parts = text.split("/")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def parse_cidr(text: str) -> tuple[int, int, int]:
    """(bits, low, high) of a CIDR block, or CidrError with AWS's reason."""
    parts = _java_split_slash(text)
    if len(parts) != 2:
        raise CidrError("Malformed CIDR, one '/' required")
    if not _MASK_RE.fullmatch(parts[1]) or abs(int(parts[1])) > INT32_MAX:
        raise CidrError("Malformed CIDR, mask bits must be an integer")
    mask_bits = int(parts[1])
    if mask_bits < 0:
        raise CidrError("Malformed CIDR, mask bits must not be negative")
    if not looks_like_ip(parts[0]):
        raise CidrError(f"Nonstandard IP address: {parts[0]}")
    address = parse_ip(parts[0])
    if address is None:
        raise CidrError(f"Invalid IP address: {parts[0]}")
    bits, value = address
    if bits == 32 and mask_bits > 31:
        raise CidrError("IPv4 mask bits must be < 32")
    if bits == 128 and mask_bits > 127:
        raise CidrError("IPv6 mask bits must be < 128")
    host_mask = (1 << (bits - mask_bits)) - 1
    return bits, value, value | host_mask
