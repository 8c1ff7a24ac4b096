"""What ``tenancy check`` reports: one :class:`Finding` per problem."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    """One problem :func:`~tenancy.postgres.audit.audit` found: what is wrong (``kind``), where, and why."""

    kind: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.message}"
