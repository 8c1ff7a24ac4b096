"""The notes API: every endpoint sees only the calling installation's notebooks and notes.

Run it with ``uvicorn notes_app.main:app`` (settings from the environment; see README.md).
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations of handlers
# defined inside create_app() at run time, and `Db` is local to it.
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

import tenancy
from notes_app.models import Note, Notebook
from tenancy.integrations.fastapi import TenancyFastAPI

log = logging.getLogger("notes")


class NotebookIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class NotebookOut(BaseModel):
    id: int
    name: str


class NoteIn(BaseModel):
    notebook_id: int
    title: str = Field(min_length=1, max_length=200)
    body: str = ""


class NoteOut(BaseModel):
    id: int
    notebook_id: int
    title: str
    body: str


class SiteOut(BaseModel):
    instance_id: str
    status: str
    site_display_name: str | None
    billing_package_name: str | None


def create_app(settings: tenancy.Settings | None = None) -> FastAPI:
    """The app; *settings* default to the environment (read at startup)."""
    wix = TenancyFastAPI(settings)
    app = FastAPI(title="notes", lifespan=wix.lifespan)
    Db = Annotated[Session, Depends(wix.session)]

    @app.get("/notes")
    def list_notes(db: Db) -> list[NoteOut]:
        notes = db.scalars(select(Note).order_by(Note.id)).all()
        log.info("listed %d notes", len(notes))  # the record carries this tenant's instance_id
        return [NoteOut(id=n.id, notebook_id=n.notebook_id, title=n.title, body=n.body) for n in notes]

    @app.get("/notebooks")
    def list_notebooks(db: Db) -> list[NotebookOut]:
        return [NotebookOut(id=b.id, name=b.name) for b in db.scalars(select(Notebook).order_by(Notebook.id))]

    @app.post("/notebooks", status_code=201)
    def create_notebook(data: NotebookIn, db: Db) -> NotebookOut:
        notebook = Notebook(name=data.name)  # instance_id is stamped by the session
        db.add(notebook)
        try:
            db.commit()
        except tenancy.DuplicateInTenant:
            raise HTTPException(409, "a notebook with this name exists") from None
        return NotebookOut(id=notebook.id, name=notebook.name)

    @app.post("/notes", status_code=201)
    def create_note(data: NoteIn, db: Db) -> NoteOut:
        # Another installation's notebook is simply not there for this session.
        if db.get(Notebook, (db.info["tenancy.instance_id"], data.notebook_id)) is None:
            raise HTTPException(404, "no such notebook")
        note = Note(notebook_id=data.notebook_id, title=data.title, body=data.body)
        db.add(note)
        db.commit()
        return NoteOut(id=note.id, notebook_id=note.notebook_id, title=note.title, body=note.body)

    @app.get("/site")
    def site(db: Db) -> SiteOut:
        # The tenants row tenancy keeps fresh (tenancy sync, webhooks); RLS shows only this one.
        row = db.scalars(select(tenancy.Tenant)).one()
        return SiteOut(
            instance_id=str(row.instance_id),
            status=row.status,
            site_display_name=row.site_display_name,
            billing_package_name=row.billing_package_name,
        )

    wix.add_webhook_route(app, "/webhooks/wix")
    return app


tenancy.log_instance_ids()  # %(instance_id)s in any log format
app = create_app()
