"""The consent text patients accept before their files are reviewed, versioned, per language.

A new version is added here (never edited in place); cases keep the version they accepted.
A version's translations are written and reviewed together with it and carry its version id:
they are the same consent in another language, not a gettext string (a translator's edit to
the catalogue must never change what a patient agreed to).
"""

from __future__ import annotations

from portal.i18n import SOURCE_LANGUAGE, current

CONSENT_TEXTS: dict[str, dict[str, str]] = {
    "2026-11": {
        "en": (
            "I ask for an independent second opinion on the images and records I upload. "
            "I agree that the portal stores them encrypted and shows them only to the "
            "specialist assigned to my case and to the coordinators who organise the review. "
            "I understand that the specialist has not examined me, that the opinion is based "
            "only on what I provide, and that it does not replace care by my treating doctors. "
            "I can withdraw this consent and ask for my case to be erased at any time before "
            "the opinion is delivered."
        ),
        "ru": (
            "Я прошу дать независимое второе мнение по изображениям и документам, которые я "
            "загружаю. Я согласен(на) с тем, что портал хранит их в зашифрованном виде и "
            "показывает только специалисту, которому назначено моё обращение, и координаторам, "
            "которые организуют рассмотрение. Я понимаю, что специалист меня не осматривал, что "
            "заключение основано только на предоставленных мною материалах и что оно не "
            "заменяет медицинской помощи моих лечащих врачей. Я могу отозвать это согласие и "
            "попросить удалить моё обращение в любой момент до выдачи заключения."
        ),
    },
}
CURRENT_VERSION = "2026-11"


def consent_text(version: str = CURRENT_VERSION, language: str | None = None) -> tuple[str, str]:
    """The text of ``version`` in ``language`` (default: the current one), else in English,
    with the language it is in."""
    texts = CONSENT_TEXTS[version]
    wanted = language or current()
    chosen = wanted if wanted in texts else SOURCE_LANGUAGE
    return chosen, texts[chosen]
