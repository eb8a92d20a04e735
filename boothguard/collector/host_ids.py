"""What a host may be called: checked at enrollment, so nothing later (an export's `#` lines, a CSV cell,
a dashboard URL, a download file name) has to survive a newline, a slash or a formula in a host id."""

from __future__ import annotations

import unicodedata

# A machine-id is 32 hex digits; names people give booths fit this too. No `/`, space, quote or newline.
HOST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
HOST_NAME_MAX = 255
# Control and format characters (newline, NUL, right-to-left override), unassigned, private use,
# and the line/paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be a host's display name (any script is fine, Japanese included), or None."""
    if not 1 <= len(name) <= HOST_NAME_MAX:
        return f"host name must be 1 to {HOST_NAME_MAX} characters"
    if name != name.strip():
        return "host name must not begin or end with white space"
    bad = next((c for c in name if unicodedata.category(c) in _BAD_CATEGORIES), None)
    if bad is not None:
        return f"host name contains a control or invisible character (U+{ord(bad):04X})"
    return None
