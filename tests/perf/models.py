"""The benchmark's own tenant tables: items (point lookups, scans) and parents with children."""

from __future__ import annotations

from sqlalchemy import Identity, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tenancy import TenantScoped, tenant_foreign_key
from tenancy.models import NAMING_CONVENTION


class BenchBase(DeclarativeBase):
    """A base of its own, so ``create_all`` makes only the benchmark's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Item(TenantScoped, BenchBase):
    """A plain tenant row."""

    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(Integer)


class Parent(TenantScoped, BenchBase):
    """A tenant row with children."""

    __tablename__ = "bench_parents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    children: Mapped[list[Child]] = relationship(order_by="Child.id")


class Child(TenantScoped, BenchBase):
    """A child row; its foreign key carries the tenant."""

    __tablename__ = "bench_children"
    __table_args__ = (tenant_foreign_key("parent_id", "bench_parents.id"),)
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    parent_id: Mapped[int] = mapped_column(Integer)
    value: Mapped[int] = mapped_column(Integer)


class LegacyItem(TenantScoped, BenchBase):
    """``bench_items`` again, under the policy before the sealed binding (it trusted the setting)."""

    __tablename__ = "bench_items_legacy"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(Integer)
