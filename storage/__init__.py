"""The only way bytes reach object storage: keys, encryption, the S3 store and the vault."""
