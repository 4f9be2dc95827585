"""Patients' records (PDF reports, photos of paper reports) shown as images we render."""
