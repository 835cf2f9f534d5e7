"""Signed values for cookies and form tokens, keyed by the project's secret.

    >>> from robaccia.signing import Signer
    >>> signer = Signer('s' * 32, 'flash')
    >>> signed = signer.sign('hello')
    >>> signer.unsign(signed), signer.unsign(signed + 'x'), signer.unsign('hello.')
    ('hello', None, None)

A signer is bound to one purpose: a value signed for the flash cookie is not
valid as a CSRF cookie.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["Signer"]

#: How many verified values are remembered (then forgotten at once).
MEMO_SIZE = 4096


def _remember(memo: dict[str, str], key: str, value: str) -> None:
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value


class Signer:
    """Sign and verify values with an HMAC of the secret and a purpose."""

    def __init__(self, secret: str, purpose: str) -> None:
        if not secret:
            raise ValueError("signing needs a secret key")
        self.key = hashlib.sha256(f"robaccia:{purpose}:".encode() + secret.encode()).digest()
        # PERF: HMAC-SHA256 (RFC 2104) from the hash states of the padded key,
        # copied for each value: the MAC hmac.digest(key, value, "sha256") gives
        # (tests/test_signing.py checks both ways), without setting the key up
        # again on every call (half the work). The key is 32 bytes, under
        # SHA-256's 64-byte block, so it is only padded.
        block = self.key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))
        self._verified: dict[str, str] = {}
        self._macs: dict[str, str] = {}

    def digest(self, data: bytes) -> bytes:
        """Return the HMAC-SHA256 of ``data`` under this signer's key."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def mac(self, value: str) -> str:
        """Return the MAC of a value, hex (remembered: the same values recur)."""
        mac = self._macs.get(value)
        if mac is None:
            mac = self.digest(value.encode()).hex()
            _remember(self._macs, value, mac)
        return mac

    def sign(self, value: str) -> str:
        """Return ``value.mac``."""
        return f"{value}.{self.digest(value.encode()).hex()[:32]}"

    def unsign(self, signed: str | None) -> str | None:
        """Return the value of a signed string, or None if the signature is wrong."""
        if not signed:
            return None
        # PERF: a browser sends the same cookie on every request; its value,
        # once verified, is remembered (only verified values, a bounded number).
        value = self._verified.get(signed)
        if value is not None:
            return value
        value, _, _ = signed.rpartition(".")
        if value and hmac.compare_digest(self.sign(value).encode(), signed.encode("utf-8", "replace")):
            _remember(self._verified, signed, value)
            return value
        return None
