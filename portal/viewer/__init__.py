"""The browser viewer: DICOM frames rendered server-side to PNG from the decrypted objects."""
