"""Persistent state: SQLAlchemy Core tables, the engine, and one module of queries per aggregate."""
