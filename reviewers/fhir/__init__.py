"""FHIR R4 exports: a delivered opinion as a document bundle, the audit trail as AuditEvents."""
