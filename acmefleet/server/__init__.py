"""Running the server: the data directory, start-up wiring, and the HTTP listeners."""
