# ruff: noqa: RUF001 -- full-width input is what these tests feed the detector
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boothguard.session import fingerprint, pii
from tests.session.pii_corpus import FALSE_POSITIVES, TRUE_POSITIVES


@pytest.mark.parametrize(("text", "expected"), TRUE_POSITIVES)
def test_true_positives(text: str, expected: dict[str, int]) -> None:
    assert pii.scan(text) == expected


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_false_positives(text: str) -> None:
    assert pii.scan(text) == {}


def _luhn_complete(prefix_and_body: str) -> str:
    for d in "0123456789":
        if pii.luhn_ok(prefix_and_body + d):
            return prefix_and_body + d
    raise AssertionError("unreachable")


ISSUERS = [
    ("4", 16),
    ("4", 13),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("34", 15),
    ("37", 15),
    ("3528", 16),
    ("3589", 19),
    ("36", 14),
    ("6011", 16),
    ("65", 16),
    ("62", 16),
]


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, length = draw(st.sampled_from(ISSUERS))
    body = draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    return _luhn_complete(prefix + body)


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for n in sizes:
        out.append(digits[i : i + n])
        i += n
    return sep.join(out)


FULL_WIDTH = str.maketrans("0123456789- ", "０１２３４５６７８９－\u3000")


@given(cards(), st.sampled_from(["", " ", "-"]), st.booleans(), st.sampled_from(["", "カード ", "card: "]))
def test_generated_cards_are_found(card: str, sep: str, wide: bool, before: str) -> None:
    sizes = {13: (4, 4, 5), 14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}[len(card)]
    text = before + (_group(card, sizes, sep) if sep else card)
    if wide:
        text = text.translate(FULL_WIDTH)
    assert pii.scan(text) == {"credit_card": 1}


@given(cards(), st.integers(1, 9))
def test_a_wrong_check_digit_is_not_a_card(card: str, delta: int) -> None:
    broken = card[:-1] + str((int(card[-1]) + delta) % 10)
    assert "credit_card" not in pii.scan(broken)


@given(st.text("0123456789", min_size=11, max_size=11))
def test_my_number_check_digit(body: str) -> None:
    good = [d for d in "0123456789" if pii.my_number_ok(body + d)]
    assert len(good) == 1
    number = body + good[0]
    if not pii._looks_like_timestamp(number):
        assert pii.scan(f"個人番号 {number}") == {"my_number": 1}
    for d in "0123456789":
        if d != good[0]:
            assert "my_number" not in pii.scan(f"個人番号 {body + d}")


@given(
    st.sampled_from(["090", "080", "070"]),
    st.text("0123456789", min_size=8, max_size=8),
    st.sampled_from(["-", " ", "", "ー"]),
)
def test_mobile_numbers(prefix: str, rest: str, sep: str) -> None:
    text = f"{prefix}{sep}{rest[:4]}{sep}{rest[4:]}" if sep else prefix + rest
    assert pii.scan(text) == {"phone_jp": 1}
    assert pii.scan(text.translate(FULL_WIDTH)) == {"phone_jp": 1}


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_scan_is_total_and_returns_only_counts(text: str) -> None:
    counts = pii.scan(text)
    assert set(counts) <= set(pii.KINDS)
    assert all(isinstance(v, int) and v > 0 for v in counts.values())


def test_large_text_counts_every_occurrence() -> None:
    line = "TEL 03-3400-1234 〒150-0002 order 2023-01-15 12:34:56\n"
    assert pii.scan(line * 5000) == {"phone_jp": 5000, "postal_code_jp": 5000}


def test_luhn_and_issuers() -> None:
    assert pii.luhn_ok("4111111111111111")
    assert not pii.luhn_ok("4111111111111112")
    assert pii.card_issuer("378282246310005") == "amex"
    assert pii.card_issuer("3530111333300000") == "jcb"
    assert pii.card_issuer("9111111111111111") is None


def test_fingerprint_is_keyed_and_normalized() -> None:
    key_a, key_b = b"a" * 32, b"b" * 32
    fa = fingerprint.fingerprint(key_a, "4111 1111 1111 1111")
    assert fa == fingerprint.fingerprint(key_a, "４１１１　１１１１　１１１１　１１１１")
    assert fa != fingerprint.fingerprint(key_b, "4111 1111 1111 1111")
    assert "4111" not in fa
    assert len(fa) == fingerprint.FINGERPRINT_HEX


def test_key_file_is_created_private_and_stable(tmp_path: Path) -> None:

    path = tmp_path / "state" / "clipboard.key"
    k1 = fingerprint.load_or_create_key(path)
    assert len(k1) == 32
    assert (path.stat().st_mode & 0o777) == 0o600
    assert fingerprint.load_or_create_key(path) == k1
