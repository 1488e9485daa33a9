"""lower-case the stored email addresses

Contacts are looked up by their email lower-cased, local part too, so a stored address must be lower-case
to be found. Where two contacts' addresses differ only in case, the oldest contact takes the lower-case
address and the others keep theirs; each is named in a warning, to be merged by hand.

Revision ID: 0006
Revises: 0003
"""
import logging

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

logger = logging.getLogger("followup.migrations")
contacts = sa.table("contacts", sa.column("id", sa.Integer), sa.column("email", sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(contacts.c.id, contacts.c.email).where(contacts.c.email.is_not(None))
                        .order_by(contacts.c.id)).all()
    taken = {email: cid for cid, email in rows if email == email.lower()}
    changes = []
    for cid, email in rows:
        lower = email.lower()
        if lower == email:
            continue
        if lower in taken:
            logger.warning("contact %s keeps its email as it is: contact %s has the same address in lower case; "
                           "merge the two by hand", cid, taken[lower])
            continue
        taken[lower] = cid
        changes.append({"cid": cid, "lower": lower})
    if changes:
        conn.execute(sa.update(contacts).where(contacts.c.id == sa.bindparam("cid"))
                     .values(email=sa.bindparam("lower")), changes)


def downgrade() -> None:
    """Nothing to undo: the lower-case addresses reach the same mailboxes."""
