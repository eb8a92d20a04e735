"""The .deb's /usr/share/doc/boothguard: a DEP-5 copyright file and changelog.Debian.gz.

Licenses come from the metadata of what is shipped: boothguard's own dist-info (pyproject.toml's `license`)
and, for the bundled virtualenv, each distribution's dist-info.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.utils
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

DOC_DIR = "usr/share/doc/boothguard"
FORMAT = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
# pyproject.toml declares no license (yet): say so instead of inventing one.
NOT_DECLARED = "not-declared"
_NOT_DECLARED_TEXT = (
    "The project declares no license in its package metadata (no `license` in pyproject.toml).\n"
    "No license is granted until it does; all rights are reserved by the copyright holders."
)


@dataclass(frozen=True)
class Dist:
    name: str
    version: str
    license: str  # an SPDX expression, a short name, or NOT_DECLARED


def read_dists(site: Path) -> list[Dist]:
    """Every distribution installed in `site` (a site-packages directory), from its METADATA."""
    dists = []
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        msg = email.parser.BytesHeaderParser().parse(io.BytesIO(meta.read_bytes()))
        dists.append(Dist(str(msg["Name"]), str(msg["Version"]), _license(msg)))
    return dists


def _license(msg: email.message.Message) -> str:
    if expression := msg.get("License-Expression"):
        return str(expression).strip()
    text = str(msg.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 60 and text.upper() != "UNKNOWN":
        return text
    classifiers = [
        str(c).rsplit("::", 1)[1].strip()
        for c in msg.get_all("Classifier") or []
        if str(c).startswith("License ::") and str(c).count("::") >= 2
    ]
    return " and ".join(classifiers) if classifiers else NOT_DECLARED


def copyright_text(own: Dist, bundled: list[Dist], site: str, year: int) -> str:
    """DEP-5: boothguard's license for the package, each bundled distribution's for site-packages."""
    others = [d for d in bundled if d.name.lower() != own.name.lower()]
    listing = "\n".join(f" {d.name} {d.version}: {d.license}" for d in others)
    paragraphs = [
        f"Format: {FORMAT}\nUpstream-Name: {own.name}\n",
        f"Files: *\nCopyright: {year} {own.name} maintainers\nLicense: {own.license}\n",
        (
            f"Files: {site}/*\n"
            "Copyright: the authors of each distribution, as listed in its *.dist-info/\n"
            "License: bundled-distributions\n"
        ),
        (
            f"Files: {site}/{own.name}/* {site}/{own.name}-*.dist-info/*\n"
            f"Copyright: {year} {own.name} maintainers\nLicense: {own.license}\n"
        ),
        (
            "License: bundled-distributions\n"
            " The virtualenv under /opt/boothguard bundles these distributions from PyPI, each under the\n"
            " license its metadata declares (full texts in its *.dist-info/ directory):\n"
            f"{_dep5_block(listing)}\n"
        ),
    ]
    if own.license == NOT_DECLARED or any(d.license == NOT_DECLARED for d in others):
        paragraphs.append(f"License: {NOT_DECLARED}\n{_dep5_block(_NOT_DECLARED_TEXT)}\n")
    return "\n".join(paragraphs)


def _dep5_block(text: str) -> str:
    """Continuation lines: each indented by one space, empty lines as ' .'."""
    return "\n".join(f" {line.strip()}" if line.strip() else " ." for line in text.splitlines())


def changelog_gz(package: str, version: str, upstream: str, maintainer: str, when: dt.datetime) -> bytes:
    """One Debian changelog entry, compressed like `gzip -9n` (no name, no timestamp)."""
    entry = (
        f"{package} ({version}) unstable; urgency=medium\n\n"
        f"  * Binary package of {package} {upstream}, built by boothguard.install.deb:\n"
        "    a virtualenv under /opt/boothguard, units, udev rule and example configs.\n\n"
        f" -- {maintainer}  {email.utils.format_datetime(when)}\n"
    )
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as gz:
        gz.write(entry.encode())
    return out.getvalue()


def build_time() -> dt.datetime:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else now; always UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def write(root: Path, package: str, version: str, maintainer: str, site: Path) -> Path:
    """Place copyright and changelog.Debian.gz under `root`; `site` is the staged site-packages."""
    dists = read_dists(site)
    own = next(d for d in dists if d.name.lower() == package)
    doc = root / DOC_DIR
    doc.mkdir(parents=True, exist_ok=True)
    rel_site = site.relative_to(root).as_posix()
    when = build_time()
    (doc / "copyright").write_text(copyright_text(own, dists, rel_site, when.year))
    (doc / "changelog.Debian.gz").write_bytes(changelog_gz(package, version, own.version, maintainer, when))
    for path in (doc, doc / "copyright", doc / "changelog.Debian.gz"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return doc
