"""The second-opinion portal: FastAPI application, accounts, cases, intake and audit trail."""
