"""What the tests share, one piece of code each (``from support import ...``).

* :mod:`support.databases`: the database URLs, and skipping (or failing,
  with ROBACCIA_REQUIRE_SERVICES=1) when a service is missing;
* :mod:`support.pages`: the HTML reader (inputs, ids, links, text, shape);
* :mod:`support.projects`: the project builder, robaccia-admin as a
  subprocess, loading a project in this process;
* :mod:`support.servers`: serving a project for real (``run`` or ``serve``);
* :mod:`support.client`: the HTTP client for those servers.
"""

from .client import Client, Response, TransportError
from .databases import (
    DATABASE_URLS,
    MARIADB_URL,
    POSTGRES_URL,
    REQUIRE_SERVICES,
    database_problem,
    missing,
    require_database,
    require_postgres,
)
from .pages import Page, first_difference, page_text, read_page, shape
from .projects import EMPLOYEE_FIELDS, admin, load, make_project, project_env
from .servers import Server, served

__all__ = [
    "DATABASE_URLS",
    "EMPLOYEE_FIELDS",
    "MARIADB_URL",
    "POSTGRES_URL",
    "REQUIRE_SERVICES",
    "Client",
    "Page",
    "Response",
    "Server",
    "TransportError",
    "admin",
    "database_problem",
    "first_difference",
    "load",
    "make_project",
    "missing",
    "page_text",
    "project_env",
    "read_page",
    "require_database",
    "require_postgres",
    "served",
    "shape",
]
