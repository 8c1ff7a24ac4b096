"""Drop-ins for the web frameworks Wix backends are written in.

``tenancy.integrations.fastapi`` (``pip install 'wix-tenancy[fastapi]'``) and
``tenancy.integrations.flask`` (``pip install 'wix-tenancy[flask]'``): a tenant session per request
from the ``Authorization`` header, 401/503 answers, a verified webhook route, startup and
shutdown of the engines and the Wix client. Importing :mod:`tenancy` never imports a framework;
importing one of these modules without its framework raises :class:`~tenancy.ConfigurationError`
naming the extra to install.
"""
