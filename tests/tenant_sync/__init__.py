"""Tests of tenancy.tenant_sync."""
