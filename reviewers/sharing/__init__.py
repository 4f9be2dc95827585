"""Share links: a delivered opinion for the patient's own doctor (docs/sharing.md)."""
