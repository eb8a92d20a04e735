"""Personal-data detection: counts by kind, never the matches themselves.

Pure functions over a string. The text is NFKC-normalized first (full-width digits, hyphens, at signs), other
dash look-alikes are folded to "-", then each detector runs over what the previous ones left: a span
counted as a card number is masked before phone numbers and postal codes are looked for, so one number
is never counted twice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator

KINDS = ("credit_card", "my_number", "phone_jp", "postal_code_jp", "email")
PiiCounts = dict[str, int]

# Dashes NFKC leaves alone but people (and IMEs) type between digits.
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\u2043\ufe63", "-"))
_MASK = "\x00"  # not a digit, hyphen, space or word character: a clean boundary for later detectors

# Words before a number that say it is an identifier of ours, not a person's (order, invoice, ticket…).
_NOT_PERSONAL = re.compile(
    r"(?:\b(?:order|invoice|inv|ticket|tracking|receipt|serial|sku|transaction|txn)\b|注文|請求|伝票|受付|"
    r"問合せ|問い合わせ|管理|整理|製造|型番|品番|オーダー|取引)\s*(?:番号|no\.?|number|id|#)?\s*[:\uff1a.#-]?\s*$",
    re.IGNORECASE,
)
_CONTEXT_CHARS = 24


# Other punctuation people put between digit groups (4111.1111.1111.1111, 03/1234/5678, 090・1234・5678).
# Folded to "-" only in runs of three or more groups with one separator, so decimals (3.14), times and
# 123.4567 stay what they are.
_GROUP_RUN = re.compile(r"\d+([./\u30fb\u00b7\u2022\u2219_])\d+(?:\1\d+)+", re.ASCII)


def _fold_groups(m: re.Match[str]) -> str:
    return m.group(0).replace(m.group(1), "-")


def normalize(text: str) -> str:
    return _GROUP_RUN.sub(_fold_groups, unicodedata.normalize("NFKC", text).translate(_DASHES))


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:  # noqa: PLR0911 -- one return per issuer reads best
    """The issuer whose ranges and lengths fit, or None."""
    n = len(digits)
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65) and 16 <= n <= 19:
        return "discover"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    return None


def my_number_ok(digits: str) -> bool:
    """The check digit of the Japanese individual number (12 digits)."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    body = digits[:11]
    total = 0
    for n in range(1, 12):
        p = ord(body[11 - n]) - 48
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    rem = total % 11
    check = 0 if rem <= 1 else 11 - rem
    return check == ord(digits[11]) - 48


def _looks_like_timestamp(digits: str) -> bool:
    """YYYYMMDDhhmm(ss…): machine timestamps are not My Numbers even when the check digit fits."""
    if len(digits) < 12:
        return False
    y, mo, d, h, mi = (
        int(digits[0:4]),
        int(digits[4:6]),
        int(digits[6:8]),
        int(digits[8:10]),
        int(digits[10:12]),
    )
    return 1900 <= y <= 2099 and 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60


_CARD_GROUPINGS = {
    (4, 4, 4, 4),
    (4, 6, 5),
    (4, 6, 4),
    (4, 4, 4, 4, 3),
    (4, 4, 4, 1),
    (4, 4, 5),
    (4, 4, 4, 2),
    (4, 4, 4, 3),
    (4, 4, 4, 4, 2),
    (4, 4, 4, 4, 1),
}
_CARD = re.compile(r"(?<!\d[ -])(?<![\w\-.+/])\d(?:[ -]?\d){12,18}(?![\w]|[ -]?\d|[.,/]\d)", re.ASCII)
_MY_NUMBER = re.compile(
    r"(?<!\d[ -])(?<![\w\-.+/])(?:\d{12}|\d{4}([ -])\d{4}\1\d{4})(?![\w]|[ -]?\d|[.,/]\d)", re.ASCII
)
_PHONE = re.compile(
    r"(?<!\d[ -])(?<![\w\-.+/])(?:"
    r"\+81[ -]?(?:\(0\)[ -]?)?[1-9]\d{0,3}[ -]?\d{1,4}[ -]?\d{3,4}"  # +81 international
    r"|0[5789]0[ -]?\d{4}[ -]?\d{4}"  # mobile / IP / 0800
    r"|\(0\d{1,4}\)[ -]?\d{1,4}[ -]?\d{4}"  # (03) 1234-5678
    r"|0\d{1,4}[ -]\d{1,4}[ -]\d{3,4}"  # 03-1234-5678, 0120-123-456
    r")(?![\w]|[ -]?\d|[.,/]\d)",
    re.ASCII,
)
_POSTAL = re.compile(
    r"〒\s*\d{3}-?\d{4}(?!\d)|(?<!\d[ -])(?<![\w\-.+/:])\d{3}-\d{4}(?![\w]|-\d|[.,/:]\d)", re.ASCII
)
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])",
    re.ASCII,
)


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _preceded_by_id_word(text: str, start: int) -> bool:
    return bool(_NOT_PERSONAL.search(text[max(0, start - _CONTEXT_CHARS) : start]))


def _card(text: str, m: re.Match[str]) -> bool:
    raw = m.group(0)
    digits = _digits(raw)
    if not 13 <= len(digits) <= 19:
        return False
    seps = {ch for ch in raw if not ch.isdigit()}
    if len(seps) > 1:
        return False
    if seps:
        groups = tuple(len(g) for g in re.split(r"[ -]", raw))
        if groups not in _CARD_GROUPINGS:
            return False
    # No id-word exclusion: a Luhn-valid number of an issuer's shape is a card even after 注文番号 (issue 14).
    return luhn_ok(digits) and card_issuer(digits) is not None


def _my_number(text: str, m: re.Match[str]) -> bool:
    digits = _digits(m.group(0))
    # As for cards, an id word does not excuse a number whose check digit makes it a valid My Number.
    return my_number_ok(digits) and not _looks_like_timestamp(digits)


def _phone(text: str, m: re.Match[str]) -> bool:
    raw = m.group(0)
    digits = _digits(raw)
    if raw.startswith("+81"):
        national = digits[2:]
        if national.startswith("0"):
            national = national[1:]
        return len(national) in (9, 10) and not _preceded_by_id_word(text, m.start())
    if len(digits) not in (10, 11):
        return False
    if len(digits) == 11 and digits[:3] not in ("050", "070", "080", "090") and not digits.startswith("0800"):
        return False
    return not _preceded_by_id_word(text, m.start())


def _postal(text: str, m: re.Match[str]) -> bool:
    return m.group(0).startswith("〒") or not _preceded_by_id_word(text, m.start())


def _email(text: str, m: re.Match[str]) -> bool:
    return True


_Check = Callable[[str, re.Match[str]], bool]
_DETECTORS: tuple[tuple[str, re.Pattern[str], _Check], ...] = (
    ("email", _EMAIL, _email),
    ("credit_card", _CARD, _card),
    ("my_number", _MY_NUMBER, _my_number),
    ("phone_jp", _PHONE, _phone),
    ("postal_code_jp", _POSTAL, _postal),
)


def _matches(text: str, pattern: re.Pattern[str], check: _Check) -> Iterator[tuple[int, int]]:
    for m in pattern.finditer(text):
        if check(text, m):
            yield m.span()


def scan(text: str) -> PiiCounts:
    """Counts of personal data by kind (only kinds found). The input is never kept or logged."""
    work = normalize(text)
    counts: PiiCounts = {}
    for kind, pattern, check in _DETECTORS:
        spans = list(_matches(work, pattern, check))
        if not spans:
            continue
        counts[kind] = len(spans)
        parts: list[str] = []
        last = 0
        for start, end in spans:
            parts.append(work[last:start])
            parts.append(_MASK * (end - start))
            last = end
        parts.append(work[last:])
        work = "".join(parts)
    return counts
