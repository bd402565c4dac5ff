"""Policy: what the server allows, decided between the request checks and the store."""
