"""The Wix layer: the HTTP client, its response types, the token resolver and webhooks.

:mod:`.client` speaks to Wix (Token Info, client-credentials tokens, Get App Instance);
:mod:`.types` parses the responses; :mod:`.resolver` turns a request's access token into a
verified instance id (cached, single-flight through :mod:`.singleflight`); :mod:`.webhooks`
verifies Wix's signed webhook bodies.

Imports: only :mod:`tenancy.errors`, :mod:`tenancy.settings` and :mod:`tenancy.instance_ids`
from outside this folder. Nothing here touches the database.
"""
