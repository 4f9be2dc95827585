"""Break-glass: an admin's reasoned, audited, time-limited grant to read one case's content."""
