"""Dashboard languages: Japanese and English catalogs, chosen by cookie, then Accept-Language."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGS = ("ja", "en")
DEFAULT = "ja"  # the team this is built for reads Japanese first
COOKIE = "bg_lang"
_DIR = Path(__file__).parent / "i18n"


@cache
def catalog(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The cookie wins; else the best-weighted supported language of Accept-Language; else Japanese."""
    if cookie in LANGS:
        return cookie
    best, best_q = DEFAULT, -1.0
    for i, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        q -= i * 1e-6  # earlier wins among equal weights
        if q > best_q:
            best, best_q = primary, q
    return best


class Translator:
    """`t("key", name=value)`: the catalog text with `{name}` placeholders; unknown keys show themselves."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._own = catalog(lang)
        self._fallback = catalog("en")

    def __call__(self, key: str, **kw: object) -> str:
        text = self._own.get(key) or self._fallback.get(key) or key
        return text.format(**kw) if kw else text

    def own(self, key: str) -> str | None:
        """This language's own text for `key`, without the English fallback."""
        return self._own.get(key)

    def maybe(self, prefix: str, value: str | None) -> str:
        """A translated label for a value (event type, reason) when the catalog has one, else the value."""
        if value is None:
            return ""
        key = f"{prefix}.{value}"
        return self._own.get(key) or self._fallback.get(key) or value
