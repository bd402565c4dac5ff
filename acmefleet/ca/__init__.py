"""The embedded CA: hierarchy on disk, CSR checks, leaf issuance, CRLs.

Knows nothing of HTTP or SQL; callers pass keys, names, times and bytes.
"""
