"""What every server-rendered page shares: templates, the signed-in page caller, form CSRF."""
