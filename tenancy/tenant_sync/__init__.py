"""Keeping the ``tenants`` table true to Wix: the sync job and webhook events.

:mod:`.job` runs the sync (:func:`tenancy.sync`); :mod:`.store` claims due tenants and writes
their rows; :mod:`.report` is its :class:`~tenancy.SyncReport`; :mod:`.ratelimit` keeps it
inside Wix's limits; :mod:`.events` applies verified webhook events to the same rows.

Imports: :mod:`tenancy.tenants` and :mod:`tenancy.wix` (this is where the two meet) and the top-level
modules. (Named ``tenant_sync`` so that ``tenancy.sync`` stays the public function.)
"""
