"""Tests of tenancy.wix."""
