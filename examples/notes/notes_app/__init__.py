"""notes: a small Wix app backend on tenancy (FastAPI, PostgreSQL, the Wix emulator)."""
