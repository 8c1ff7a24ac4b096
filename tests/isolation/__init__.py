"""Isolation battery: the scenarios of ISOLATION.md against real PostgreSQL (and SQLite for the ORM
layer).
"""
