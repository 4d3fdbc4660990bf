"""Per recorded source: its license as the Debian package states it, whether the license allows
commercial use, and the Debian packages its reader needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceInfo:
    license: str
    commercial_use: bool  # does the license allow training a model that is sold?
    packages: tuple[str, ...]  # Debian packages the reader needs


# Licenses as each package's /usr/share/doc/<package>/copyright states them.
SOURCES: dict[str, SourceInfo] = {
    "uqm": SourceInfo(
        "CC BY-NC-SA 2.5 (Toys for Bob; may also be copied as part of a distribution of The Ur-Quan Masters)",
        False,
        ("uqm-content", "uqm-voice"),
    ),
    "tuxpaint": SourceInfo("GPL-2+ (Bill Kendrick and contributors)", True, ("tuxpaint-stamps-default",)),
    "fillets": SourceInfo(
        "GPL-2 only (Ivo and Pavel Danihelka, ALTAR interactive and translators)",
        True,
        ("fillets-ng-data", "fillets-ng-data-nl"),
    ),
    "festvox-ru": SourceInfo(
        "BSD-like (Nickolay V. Shmyrev 2005: keep the notice, mark modifications, keep the authors' names,"
        " no endorsement)",
        True,
        ("festvox-ru",),
    ),
}
