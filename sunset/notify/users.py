"""The users of each model, kept in the ledger so a run can notify them without a file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import select

from sunset.errors import InputError
from sunset.ledger import CatalogModel, Ledger, ModelUser, utcnow
from sunset.notify.recipients import Recipient


@dataclass(frozen=True)
class UserImport:
    added: int
    updated: int
    removed: int


def import_users(
    ledger: Ledger, model_id: str, recipients: Sequence[Recipient], *, replace: bool = False
) -> UserImport:
    """Add or update the model's users from a validated list, in one transaction.

    With ``replace``, users of the model not in the list are removed.

    Raises:
        InputError: the model is not in the catalog.
    """
    added = updated = removed = 0
    with ledger.session() as db:
        if db.get(CatalogModel, model_id) is None:
            raise InputError(f"Model {model_id!r} is not in the catalog; register it first.")
        known = {
            user.email.lower(): user
            for user in db.exec(select(ModelUser).where(ModelUser.model_id == model_id))
        }
        for recipient in recipients:
            values = {
                "email": recipient.email,
                "name": recipient.name,
                "webhook_url": recipient.webhook_url,
                "usage": recipient.usage,
            }
            user = known.pop(recipient.email.lower(), None)
            if user is None:
                db.add(ModelUser.model_validate(values | {"model_id": model_id}))
                added += 1
            elif any(getattr(user, key) != value for key, value in values.items()):
                user.sqlmodel_update(values | {"imported_at": utcnow()})
                db.add(user)
                updated += 1
        if replace:
            for user in known.values():
                db.delete(user)
                removed += 1
    return UserImport(added, updated, removed)


def load_users(ledger: Ledger, model_id: str) -> list[Recipient]:
    """The model's users as recipients, by email address.

    Raises:
        InputError: no users of the model are recorded.
    """
    with ledger.session() as db:
        users = db.exec(
            select(ModelUser).where(ModelUser.model_id == model_id).order_by(ModelUser.email)
        ).all()
    if not users:
        raise InputError(
            f"No users of {model_id} are recorded in the ledger; import them with "
            f"`sunset users import {model_id} FILE.csv` or pass --recipients FILE.csv."
        )
    return [Recipient(u.email, u.name, u.webhook_url, u.usage) for u in users]
