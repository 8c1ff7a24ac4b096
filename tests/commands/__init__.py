"""Tests of tenancy.commands."""
