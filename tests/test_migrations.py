"""Changing a model after createdb, through robaccia-admin as a subprocess, on every database.

The story of issue 15: createproject, addmodelview, createdb, rows; then a
column added (one nullable, one with a server default), makemigration,
migrate: the rows are intact and the new field is in the form and stored;
a rename keeps the values (batch mode on SQLite, and ids are still never
reused); a drop is refused until allowed; migrate -1 goes back. Then what is
around it: createdb and run telling drift, makemigration writing nothing when
nothing changed (the scaffolded types never flap), --sql changing nothing, the
debug page for a missing column, and a migration under a live server losing
no acknowledged write. Each test has a database of its own, dropped after it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from support import TransportError, admin, make_project, project_env, read_page, require_database, served

from robaccia.migrations import narrows

BACKENDS = ["sqlite", "postgresql", "mariadb"]
# Every scaffolded field type, and unique ones: a fresh database must match its models exactly.
EVERY_TYPE = ["name:string:100:required:unique", "code:string:6:unique", "bio:text", "office:integer:unique",
              "rating:float", "salary:decimal:required", "remote:boolean", "hired:date", "seen:datetime",
              "email:email", "site:url"]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A new, empty database (its URL; None: SQLite, the project's database.db), dropped afterwards."""
    backend = str(request.param)
    if backend == "sqlite":
        yield None
        return
    server = create_engine(require_database(backend), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"robaccia_migrations_{uuid.uuid4().hex[:12]}"
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.url.set(database=name).render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if backend == "postgresql" else ""
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}{force}"))
        server.dispose()


def engine_for(root: Path, url: str | None) -> Engine:
    return create_engine(url or f"sqlite:///{root / 'database.db'}", poolclass=NullPool)


def query(root: Path, url: str | None, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = engine_for(root, url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def columns(root: Path, url: str | None, table: str = "employees") -> list[str]:
    engine = engine_for(root, url)
    try:
        return [c["name"] for c in inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def run_admin(root: Path, url: str | None, *args: str, check: bool = True) -> Any:
    return admin(*args, cwd=root, env=project_env(url), check=check)


def edit_model(root: Path, old: str, new: str) -> None:
    path = root / "models" / "employees.py"
    source = path.read_text()
    assert old in source, source
    path.write_text(source.replace(old, new, 1))


def revisions(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "migrations" / "versions").glob("*.py"))


def written(result: Any) -> tuple[Path, str]:
    """The revision file makemigration wrote (from what it said), and the revision's id."""
    [line] = [line for line in result.stdout.splitlines() if line.startswith(" created migrations/versions/")]
    path = Path(line.removeprefix(" created "))
    return path, path.name.split("_")[2]


def project(tmp_path: Path, url: str | None, fields: list[str] | None = None, cli: bool = False) -> Path:
    """An employees project (made by robaccia-admin with ``cli``), its tables created by createdb."""
    return make_project(tmp_path, cli=cli, views={"employees": fields or ["name:string", "title:string"]},
                        database_url=url, createdb=True)


# --- the story ----------------------------------------------------------------------------------


def test_a_model_changes_without_losing_a_row(tmp_path: Path, database: str | None) -> None:
    url = database
    root = project(tmp_path, url, cli=True)
    for name, title in [("Ann", "boss"), ("Bob", "dev"), ("Cy", "ops")]:
        query(root, url, "INSERT INTO employees (name, title) VALUES (:n, :t)", n=name, t=title)

    # a nullable column and one with a server default
    edit_model(root, "    Column('title', String(250)),\n",
               "    Column('title', String(250)),\n    Column('phone', String(30)),\n"
               "    Column('dept', String(40), server_default='sales'),\n")
    made = run_admin(root, url, "makemigration", "add phone")
    assert made.stdout.splitlines()[:2] == ["  add column employees.phone VARCHAR(30)",
                                            "  add column employees.dept VARCHAR(40), default 'sales'"]
    path, first = written(made)
    assert revisions(root) == [path.name]
    assert run_admin(root, url, "migrate").stdout == f" applied {first} add phone\n"
    assert query(root, url, "SELECT id, name, title, phone, dept FROM employees ORDER BY id") == [
        (1, "Ann", "boss", None, "sales"), (2, "Bob", "dev", None, "sales"), (3, "Cy", "ops", None, "sales")]

    # the form follows the table, and a create stores the new field
    with served(root, "run", database_url=url) as server:
        client = server.client(token_page="/employees/;new_form")
        form = read_page(client.request("GET", "/employees/;new_form").body)
        assert {"name", "title", "phone", "dept"} <= set(form.inputs)
        created = client.request("POST", "/employees/", form={"name": "Di", "title": "qa", "phone": "555-0100",
                                                              "dept": "research"}, csrf=True)
        assert created.status == 303, created.text[:500]
    assert query(root, url, "SELECT name, phone, dept FROM employees WHERE name = 'Di'") == [
        ("Di", "555-0100", "research")]

    # a rename keeps the values (on SQLite batch mode rebuilds the table), and ids stay unused
    query(root, url, "DELETE FROM employees WHERE name = 'Di'")
    edit_model(root, "Column('title', String(250))", "Column('job_title', String(250))")
    guessed = run_admin(root, url, "makemigration", "rename title")
    assert "  drop column employees.title" in guessed.stdout
    assert "--rename employees.title:job_title" in guessed.stdout
    (root / written(guessed)[0]).unlink()
    renamed = run_admin(root, url, "makemigration", "rename title", "--rename", "employees.title:job_title")
    assert renamed.stdout.splitlines()[0] == "  rename column employees.title to job_title"
    run_admin(root, url, "migrate")
    assert query(root, url, "SELECT name, job_title FROM employees ORDER BY id") == [
        ("Ann", "boss"), ("Bob", "dev"), ("Cy", "ops")]
    query(root, url, "INSERT INTO employees (name) VALUES ('Ed')")
    assert query(root, url, "SELECT id FROM employees WHERE name = 'Ed'") == [(5,)]  # not 4, Di's

    # a drop is refused, naming what it would lose, until allowed
    edit_model(root, "    Column('phone', String(30)),\n", "")
    query(root, url, "UPDATE employees SET phone = '555-0199' WHERE name = 'Ann'")
    _, third = written(run_admin(root, url, "makemigration", "drop phone"))
    refused = run_admin(root, url, "migrate", check=False)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith("Error: Refused, as this would lose data: employees.phone (dropped, 1 value).")
    assert len(refused.stderr.splitlines()) == 1
    assert "phone" in columns(root, url)
    run_admin(root, url, "migrate", "--allow-data-loss")
    assert "phone" not in columns(root, url)

    # and back down one revision: the column is there again, empty
    assert run_admin(root, url, "migrate", "-1").stdout == f" undid {third} drop phone\n"
    assert "phone" in columns(root, url)
    assert query(root, url, "SELECT name, job_title FROM employees ORDER BY id")[0] == ("Ann", "boss")
    history = run_admin(root, url, "migrations").stdout.splitlines()
    assert [line[:2] for line in history[:3]] == ["  ", "> ", "  "]
    assert history[1].endswith("rename title  (the database is here)")
    assert history[2].endswith("drop phone  (not applied)")


# --- drift is told ------------------------------------------------------------------------------


def test_createdb_and_run_list_what_differs_from_the_models(tmp_path: Path, database: str | None) -> None:
    url = database
    root = project(tmp_path, url)
    edit_model(root, "    Column('title', String(250)),\n",
               "    Column('title', String(250)),\n    Column('phone', String(30)),\n")
    again = run_admin(root, url, "createdb", check=False)
    assert again.returncode == 1
    assert again.stdout.splitlines() == [" exists table employees",
                                         "The database does not match the models:",
                                         "  the column employees.phone is in the model but not in the database"]
    assert again.stderr == ('Error: Record the change with robaccia-admin makemigration "what changed", '
                            "then apply it with robaccia-admin migrate.\n")

    # run says so at start; a page that needs the column is a 500 naming it and the commands
    with served(root, "run", database_url=url) as server:
        page = server.client().request("GET", "/employees/")
        log = server.log.read_text()
    assert "  the column employees.phone is in the model but not in the database" in log
    assert page.status == 500
    assert "the column employees.phone is in the model but not in the database" in page.text
    assert "robaccia-admin makemigration &quot;what changed&quot;, then robaccia-admin migrate" in page.text


def test_a_fresh_database_matches_its_models_so_nothing_is_written(tmp_path: Path, database: str | None) -> None:
    url = database
    root = project(tmp_path, url, EVERY_TYPE)
    nothing = run_admin(root, url, "makemigration", "nothing")
    assert nothing.stdout == "No changes: the database matches models/, so no migration was written.\n"
    assert revisions(root) == []

    # a table made by a migration keeps the same storage (AUTOINCREMENT on SQLite, DATETIME(6) on MariaDB)
    admin("addmodelview", "offices", *EVERY_TYPE, cwd=root)
    made = run_admin(root, url, "makemigration", "add offices")
    assert made.stdout.startswith("  add table offices (id, name, code, bio, office, rating, salary")
    run_admin(root, url, "migrate")
    assert run_admin(root, url, "makemigration").stdout.startswith("No changes")
    assert run_admin(root, url, "migrations").stdout.endswith("The models and the database match.\n")
    if url is None:
        [sql] = query(root, url, "SELECT sql FROM sqlite_master WHERE name = 'offices'")
        assert "AUTOINCREMENT" in sql[0]

    # a new database gets every table from createdb, marked as at the latest revision
    fresh = tmp_path / "fresh.db"
    fresh_url = f"sqlite:///{fresh}" if url is None else None
    if fresh_url:
        created = run_admin(root, fresh_url, "createdb")
        assert " created table offices" in created.stdout
        assert created.stdout.endswith(f" marked the database as at the latest migration "
                                       f"({written(made)[1]})\n")
        assert run_admin(root, fresh_url, "migrate").stdout.startswith("Nothing to do")


def test_migrate_sql_prints_the_sql_and_changes_nothing(tmp_path: Path, database: str | None) -> None:
    url = database
    root = project(tmp_path, url)
    edit_model(root, "    Column('title', String(250)),\n",
               "    Column('title', String(250)),\n    Column('phone', String(30)),\n")
    run_admin(root, url, "makemigration", "add phone")
    sql = run_admin(root, url, "migrate", "--sql").stdout
    assert "ALTER TABLE employees ADD COLUMN phone VARCHAR(30);" in sql
    assert "phone" not in columns(root, url)
    assert run_admin(root, url, "migrations").stdout.endswith(
        "add phone  (not applied)\nThe database is before the first migration.\n"
        "Apply the migrations not applied yet: robaccia-admin migrate\n")

    # on SQLite a rename rebuilds the table (batch mode): --sql shows the rebuild, changing nothing
    if url is None:
        run_admin(root, url, "migrate")
        edit_model(root, "Column('title', String(250))", "Column('job_title', String(250))")
        run_admin(root, url, "makemigration", "--rename", "employees.title:job_title")
        sql = run_admin(root, url, "migrate", "--sql").stdout
        assert "CREATE TABLE _alembic_tmp_employees (" in sql and "AUTOINCREMENT" in sql
        assert "INSERT INTO _alembic_tmp_employees (id, name, job_title, phone) SELECT" in sql
        assert "title" in columns(root, url) and "job_title" not in columns(root, url)


# --- a live server ------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_a_migration_under_a_live_server_loses_no_acknowledged_write(tmp_path: Path, database: str | None) -> None:
    url = database
    root = project(tmp_path, url)
    acknowledged: list[tuple[float, str]] = []
    other: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(client: Any, name: str) -> None:
        try:
            answer = client.request("POST", "/employees/", form={"name": name, "title": "t"}, csrf=True)
        except TransportError:
            return  # no answer: not acknowledged
        with lock:
            if answer.status == 303:
                acknowledged.append((time.monotonic(), name))
            else:
                other.append(answer.status)

    def writer(number: int) -> None:
        client = server.client(token_page="/employees/;new_form")
        count = 0
        while not stop.is_set():
            write(client, f"during-{number}-{count}")
            count += 1

    with served(root, "serve", database_url=url, workers=2) as server:
        client = server.client(token_page="/employees/;new_form")
        for count in range(20):
            write(client, f"before-{count}")
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        edit_model(root, "    Column('title', String(250)),\n",
                   "    Column('title', String(250)),\n    Column('phone', String(30)),\n")
        run_admin(root, url, "makemigration", "add phone")
        started = time.monotonic()
        run_admin(root, url, "migrate")
        ended = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for count in range(20):
            write(client, f"after-{count}")

    assert "phone" in columns(root, url)
    stored = {name for (name,) in query(root, url, "SELECT name FROM employees")}
    names = [name for _, name in acknowledged]
    assert [n for n in names if n not in stored] == []
    assert sum(n.startswith("before-") for n in names) == 20 and sum(n.startswith("after-") for n in names) == 20
    assert any(started <= at <= ended for at, _ in acknowledged), "no write was acknowledged during the migration"
    assert set(other) <= {503}, other  # busy is a 503 to retry; never a 500


@pytest.mark.parametrize("database", ["postgresql", "mariadb"], indirect=True)
def test_migrate_gives_up_on_a_table_in_use_and_changes_nothing(tmp_path: Path, database: str | None) -> None:
    """A request's open transaction holds the table: migrate waits --lock-timeout, says so, changes nothing.

    Waiting longer would queue every later query of the table behind the migration.
    """
    url = database
    root = project(tmp_path, url, cli=True)
    edit_model(root, "    Column('title', String(250)),\n",
               "    Column('title', String(250)),\n    Column('phone', String(30)),\n")
    run_admin(root, url, "makemigration", "add phone")
    holder = engine_for(root, url)
    try:
        with holder.connect() as conn, conn.begin():
            conn.execute(text("SELECT count(*) FROM employees")).scalar()  # the table is in use until commit
            started = time.monotonic()
            refused = run_admin(root, url, "migrate", "--lock-timeout", "1", check=False)
            waited = time.monotonic() - started
            assert refused.returncode == 1, refused.stdout + refused.stderr
            [line] = refused.stderr.strip().splitlines()
            assert "a table it changes is in use by another connection" in line
            assert "--lock-timeout" in line
            assert waited < 15, waited  # about a second of waiting, plus starting the command
            assert conn.execute(text("SELECT count(*) FROM employees")).scalar() == 0  # the site's work went on
    finally:
        holder.dispose()
    assert "phone" not in columns(root, url)
    assert "(not applied)" in run_admin(root, url, "migrations").stdout
    applied = run_admin(root, url, "migrate")  # once the table is free, the same command goes through
    assert "add phone" in applied.stdout and "phone" in columns(root, url)


# --- the library --------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "loses"), [
    (String(250), String(30), True), (String(30), String(250), False), (String(30), None, False),
])
def test_narrows(old: Any, new: Any, loses: bool) -> None:
    from sqlalchemy import Text

    assert narrows(old, new or Text()) is loses


def test_a_missing_column_hints_at_the_migration_commands(make_table: Any, db: Engine) -> None:
    from sqlalchemy import Column, Integer
    from sqlalchemy.exc import DBAPIError

    from robaccia.debug import hint_for

    table = make_table("hint", Column("id", Integer, primary_key=True))
    for sql in (f"SELECT phone FROM {table.name}", f"SELECT id FROM {table.name}_missing"):
        with db.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text(sql))
        assert 'robaccia-admin makemigration "what changed", then robaccia-admin migrate' in hint_for(caught.value)
