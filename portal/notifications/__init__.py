"""E-mail notifications: a transactional outbox and its delivery (SMTP, or the log)."""
