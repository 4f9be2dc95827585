"""Browser tests: real Chromium via Playwright against the live portal."""
