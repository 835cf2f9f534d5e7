"""robaccia.signing: signed values, and the HMAC they are signed with."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from robaccia.signing import Signer


@given(st.text(min_size=1, max_size=40), st.sampled_from(["csrf", "flash"]), st.binary(max_size=300))
def test_the_mac_is_hmac_sha256_of_the_key(secret: str, purpose: str, data: bytes) -> None:
    """Signer's copied hash states give what hmac.digest gives, for any key and data."""
    signer = Signer(secret, purpose)
    assert signer.digest(data) == hmac.digest(signer.key, data, "sha256")
    assert signer.digest(data) == signer.digest(data)  # the key's states are copied, never spent


def test_a_value_signed_for_one_purpose_is_not_valid_for_another() -> None:
    flash, csrf = Signer("s" * 32, "flash"), Signer("s" * 32, "csrf")
    signed = flash.sign("hello")
    assert flash.unsign(signed) == "hello" and csrf.unsign(signed) is None
    assert flash.unsign(signed[:-1] + ("0" if signed[-1] != "0" else "1")) is None
