"""The consent text patients accept before their files are reviewed, versioned.

A new version is added here (never edited in place); cases keep the version they accepted.
"""

CONSENT_TEXTS: dict[str, str] = {
    "2026-11": (
        "I ask for an independent second opinion on the images and records I upload. "
        "I agree that the portal stores them encrypted and shows them only to the specialist "
        "assigned to my case and to the coordinators who organise the review. "
        "I understand that the specialist has not examined me, that the opinion is based only on "
        "what I provide, and that it does not replace care by my treating doctors. "
        "I can withdraw this consent and ask for my case to be erased at any time before the "
        "opinion is delivered."
    ),
}
CURRENT_VERSION = "2026-11"
