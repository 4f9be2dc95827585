"""Study intake: uploads, validation by content, DICOM indexing."""
