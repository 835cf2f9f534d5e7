"""${message}

Revision ${up_revision}, ${"after " + (down_revision if isinstance(down_revision, str) else ", ".join(down_revision)) if down_revision else "the first"}, written ${create_date}.
robaccia-admin migrate applies it, robaccia-admin migrate -1 undoes it. Check
what it does before you apply it; edit it if it guessed wrong (a rename looks
like a drop and an add: robaccia-admin makemigration --rename says which).
"""

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
