"""Model storage: the blob container of contracts.md section 2."""
