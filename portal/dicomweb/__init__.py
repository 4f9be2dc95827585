"""DICOMweb (PS3.18) for each case: QIDO-RS search, WADO-RS retrieve, STOW-RS store."""
