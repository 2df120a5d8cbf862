"""Sealing: keys and certificates, the PDF signer, and the signature check."""
