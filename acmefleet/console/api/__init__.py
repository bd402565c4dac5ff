"""The console's REST API (``/admin/api/v1``), served next to ACME."""
