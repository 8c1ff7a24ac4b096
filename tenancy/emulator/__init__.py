"""A local Wix API emulator over real HTTP, for tests and for developing without Wix.

::

    from tenancy.emulator import Emulator

    with Emulator(sites=3) as emu:
        client = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url)
        client.get_app_instance(emu.instance_ids[0])

With ``webhook_url=...`` it also POSTs Wix's signed App Instance webhooks to your app when
a site is installed, removed or changes plan (verify them with ``emu.webhook_public_key``).
The ``tenancy emulator`` command runs one as a process.
"""

from __future__ import annotations

from tenancy.emulator.core import (
    CONTROL_ENDPOINTS,
    ENDPOINTS,
    FAULT_KINDS,
    WEBHOOK_EVENTS,
    Emulator,
    RecordedRequest,
)
from tenancy.emulator.sites import EmulatedSite

__all__ = [
    "CONTROL_ENDPOINTS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "WEBHOOK_EVENTS",
    "EmulatedSite",
    "Emulator",
    "RecordedRequest",
]
