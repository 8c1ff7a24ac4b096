"""A local Wix API emulator over real HTTP, for tests and for developing without Wix.

::

    from tenancy.emulator import Emulator

    with Emulator(sites=3) as emu:
        client = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url)
        client.get_app_instance(emu.instance_ids[0])

The ``tenancy emulator`` command runs one as a process.
"""

from __future__ import annotations

from tenancy.emulator.core import ENDPOINTS, FAULT_KINDS, Emulator, RecordedRequest
from tenancy.emulator.sites import EmulatedSite

__all__ = ["ENDPOINTS", "FAULT_KINDS", "EmulatedSite", "Emulator", "RecordedRequest"]
