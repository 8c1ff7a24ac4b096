"""Tests of tenancy.db."""
