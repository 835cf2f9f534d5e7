"""Column types that store the same value on SQLite, PostgreSQL and MariaDB.

SQLAlchemy's generic types are right everywhere but two places on MariaDB
and MySQL: ``DATETIME`` and ``TIME`` drop fractions of a second unless given
a precision. The models ``addmodelview`` writes use these instead (and
``Double`` for floats: ``FLOAT`` is single precision on MariaDB)::

    >>> from sqlalchemy.dialects import mysql, postgresql
    >>> from robaccia.types import DateTime
    >>> DateTime.compile(dialect=mysql.dialect()), DateTime.compile(dialect=postgresql.dialect())
    ('DATETIME(6)', 'TIMESTAMP WITHOUT TIME ZONE')
"""

from __future__ import annotations

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import mysql

__all__ = ["DateTime", "Time"]

#: A date and time, to the microsecond on every database.
DateTime = sqltypes.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
#: A time of day, to the microsecond on every database.
Time = sqltypes.Time().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb")
