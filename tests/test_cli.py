"""robaccia-admin's user errors, help and deployment checks.

Every user error is one line on stderr ("Error: ..."), exit code 1, no
traceback and no file written. The exact messages are checked in-process
with click's runner (fast, and an unexpected exception fails the test);
a sample of them, and the errors that need a real process (database
unreachable, port in use), run as subprocesses.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import admin, project_env

from robaccia import scaffold
from robaccia.cli import main

OUTSIDE = ("Error: This folder is not in a robaccia project (none above it has views/ and "
           "dispatcher.py): cd into one, or make one with robaccia-admin createproject.")
MISSING_NAME = "Error: Missing required parameter <name>."
COMMANDS = ["addmodelview", "addtemplate", "addview", "check", "commands", "createdb",
            "createproject", "demo", "help", "makemigration", "migrate", "migrations", "run",
            "runtests", "secretkey", "serve"]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def invoke(*args: str) -> Result:
    """Run robaccia-admin in-process; an exception other than exiting fails the test."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_one_line_error(result: Result | subprocess.CompletedProcess[str], message: str) -> None:
    code = result.exit_code if isinstance(result, Result) else result.returncode
    assert (code, result.stdout, result.stderr) == (1, "", message + "\n")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh project with the view fred; the current folder while the test runs."""
    root = scaffold.create_project("myprj", tmp_path)
    scaffold.add_view(root, "fred")
    monkeypatch.chdir(root)
    yield root.resolve()


# --- errors, in-process: exact messages, nothing written -----------------------------


@pytest.mark.parametrize("args", [
    ["addview", "fred"],
    ["addview", "fred", "--type", "json"],
    ["addmodelview", "fred", "name:string"],
    ["createdb"],
    ["run"],
    ["run", "--no-reload", "--port", "9"],
    ["serve"],
    ["runtests"],
    ["check"],
    ["check", "--deploy"],
])
def test_outside_a_project_folder(args: list[str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke(*args), OUTSIDE)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_with_views_but_no_dispatcher_is_not_a_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "views").mkdir()
    (tmp_path / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("addview", "fred"), OUTSIDE)


@pytest.mark.parametrize(("args", "message"), [
    ([], MISSING_NAME),
    (["1abc"], "Error: '1abc' is not a valid project name: use a Python identifier, "
               "e.g. my_project."),
    (["my-prj"], "Error: 'my-prj' is not a valid project name: use a Python identifier, "
                 "e.g. my_project."),
    (["class"], "Error: 'class' is not a valid project name: use a Python identifier, "
                "e.g. my_project."),
    (["caf\u00e9"], "Error: 'caf\u00e9' is not a valid project name: use a Python identifier, "
                    "e.g. my_project."),
    (["os"], "Error: 'os' would shadow the importable module 'os'; choose another name."),
    (["robaccia"], "Error: 'robaccia' would shadow the importable module 'robaccia'; "
                   "choose another name."),
    (["sqlalchemy", "--templates", "jinja2"],
     "Error: 'sqlalchemy' would shadow the importable module 'sqlalchemy'; choose another name."),
    (["taken"], "Error: Directory 'taken' already exists."),
])
def test_createproject_refuses(args: list[str], message: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    assert_one_line_error(invoke("createproject", *args), message)
    assert tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def _bad_view(name: str) -> str:
    return (f"Error: '{name}' is not a valid view name: use lowercase letters, digits and single "
            "underscores, starting with a letter (it is the first segment of the URL: "
            "office_locations serves /office_locations/).")


@pytest.mark.parametrize("command", ["addview", "addmodelview"])
@pytest.mark.parametrize(("name", "message"), [
    ("", MISSING_NAME),
    ("Fred", _bad_view("Fred")),
    ("fr__ed", _bad_view("fr__ed")),
    ("fred_", _bad_view("fred_")),
    ("1x", _bad_view("1x")),
    ("for", "Error: 'for' is a Python keyword, so it cannot name a module: try 'fors' or 'my_for'."),
    ("fred.py", _bad_view("fred.py")),
    ("../up", _bad_view("../up")),
    ("static", "Error: 'static' cannot be a view: /static/ is where the project serves its static "
               "files. Choose another name."),
    ("a" * 61, "Error: '" + "a" * 61 + "' is too long for a view name: use at most 60 characters "
               "(it is the first segment of the URL)."),
])
def test_add_refuses_bad_view_names(command: str, name: str, message: str, project: Path) -> None:
    before = tree(project)
    assert_one_line_error(invoke(command, *([name] if name else [])), message)
    assert tree(project) == before


def _bad_field(name: str) -> str:
    return (f"Error: Field name '{name}' is not valid: use lowercase letters, digits and _ "
            "(starting with a letter), and not 'id', which every table has.")


@pytest.mark.parametrize(("fields", "message"), [
    (["name"], "Error: Field 'name' needs a type: write it as name:type, e.g. name:string."),
    (["name:blob"], "Error: Field type 'blob' is unknown; use one of: string, text, integer, "
                    "float, decimal, boolean, date, datetime, email, url."),
    (["name:"], "Error: Field type '' is unknown; use one of: string, text, integer, "
                "float, decimal, boolean, date, datetime, email, url."),
    (["name:string:big"], "Error: Option 'big' of field 'name' is unknown; use required, unique "
                          "or a length such as 100."),
    (["name:string:0"], "Error: Option '0' of field 'name' is unknown; use required, unique "
                        "or a length such as 100."),
    (["age:integer:10"], "Error: Option '10' of field 'age' is unknown; use required, unique."),
    (["ok:string", "name:string", "name:text"], "Error: Field 'name' is given twice."),
    (["id:integer"], _bad_field("id")),
    (["Name:string"], _bad_field("Name")),
    (["class:string"], "Error: Field name 'class' is a Python keyword, so code could not name the "
                       "column (table.c.class): try 'class_' or a longer name such as "
                       "'employee_class'."),
    (["2x:string"], _bad_field("2x")),
    ([":string"], _bad_field("")),
])
def test_addmodelview_refuses_bad_field_specs(fields: list[str], message: str,
                                              project: Path) -> None:
    before = tree(project)
    assert_one_line_error(invoke("addmodelview", "wilma", *fields), message)
    assert tree(project) == before


@pytest.mark.parametrize("args", [["addview", "wilma"], ["addview", "wilma", "--type", "json"],
                                  ["addmodelview", "wilma"],
                                  ["addmodelview", "wilma", "--type", "json", "name:string"]])
def test_add_writes_nothing_when_any_target_exists(args: list[str], project: Path) -> None:
    # The test file is the last one written: a partial write would show.
    existing = project / "tests" / "test_wilma.py"
    existing.write_text("# mine\n")
    before = tree(project)
    assert_one_line_error(invoke(*args), "Error: Will not overwrite already existing file: "
                                         f"'{existing}' already exists.")
    assert tree(project) == before
    assert not (project / "views" / "wilma.py").exists()
    assert not (project / "models" / "wilma.py").exists()
    assert not (project / "templates" / "wilma").exists()


def test_add_refuses_an_existing_view(project: Path) -> None:
    before = tree(project)
    message = ("Error: Will not overwrite already existing file: "
               f"'{project / 'views' / 'fred.py'}' already exists.")
    assert_one_line_error(invoke("addview", "fred"), message)
    assert_one_line_error(invoke("addmodelview", "fred", "name:string"), message)
    assert tree(project) == before


def test_bad_choices_are_usage_errors(project: Path) -> None:
    for args, option in ((["addview", "x", "--type", "xml"], "--type"),
                         (["addmodelview", "x", "--type=yaml"], "--type"),
                         (["createproject", "x", "--templates", "mako"], "--templates"),
                         (["run", "--port", "0"], "--port")):
        result = invoke(*args)
        assert result.exit_code == 2
        assert len(result.stderr.splitlines()) == 1  # usage errors are one line too
        assert result.stderr.startswith(f"Error: Invalid value for '{option}'")
        assert f"(see robaccia-admin {args[0]} --help)" in result.stderr
    assert not (project / "views" / "x.py").exists()


def test_help_for_an_unknown_command() -> None:
    assert_one_line_error(invoke("help", "nope"),
                          "Error: 'nope' is not a valid command. See robaccia-admin commands.")
    result = invoke("nope")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["Error: No such command 'nope'. (see robaccia-admin --help)"]


# --- help -------------------------------------------------------------------------------


def test_commands_lists_every_command_with_its_summary() -> None:
    result = invoke("commands")
    assert result.exit_code == 0
    listed = result.stdout.splitlines()
    assert [line.split()[0] for line in listed] == COMMANDS
    assert "  createproject   Create a new project folder NAME (which must not exist)." in listed
    assert "  runtests        Run the project's tests/ and exit non-zero when one fails." in listed


def test_help_without_a_command_is_the_main_help() -> None:
    result = invoke("help")
    assert result.exit_code == 0
    assert result.stdout == invoke("--help").stdout
    assert "robaccia -- command line tool for the robaccia web framework." in result.stdout
    for name in COMMANDS:
        assert f"\n  {name} " in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    assert f" {command} [OPTIONS]" in result.stdout.splitlines()[0]
    assert invoke(command, "-h").stdout == result.stdout
    assert invoke("help", command).stdout.strip() == result.stdout.strip()


def test_command_help_documents_the_options() -> None:
    assert "--templates [genshi|jinja2]" in invoke("createproject", "--help").stdout
    assert "--type [html|json]" in invoke("addview", "--help").stdout
    addmodelview = invoke("addmodelview", "--help").stdout
    assert ("Types: string, text, integer, float, decimal, boolean, date, datetime, email, url."
            in " ".join(addmodelview.split()))
    assert ("Options: required, unique, a length for strings (name:string:100), digits and "
            "decimal places for decimals (price:decimal:10,2)." in " ".join(addmodelview.split()))
    assert "--table MODEL" in addmodelview
    run = invoke("run", "--help").stdout
    for option in ("--host", "--port", "--no-reload"):
        assert option in run
    serve = invoke("serve", "--help").stdout
    for option in ("--host", "--port", "--workers"):
        assert option in serve


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert "0.2.0.dev0" in result.stdout


# --- errors, as real processes ------------------------------------------------------------


def _run_all(jobs: list[tuple[list[str], Path, dict[str, str] | None]]
             ) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda job: admin(*job[0], cwd=job[1], env=job[2], check=False), jobs))


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_user_errors_are_one_line_without_traceback(tmp_path: Path, listening: int) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    root = scaffold.create_project("myprj", tmp_path)
    scaffold.add_view(root, "fred")
    before = tree(root)
    env = project_env()
    port = str(listening)
    in_use = f"Error: Port {port} on 127.0.0.1 is already in use; choose another with --port."
    jobs: list[tuple[list[str], Path, dict[str, str] | None, str]] = [
        (["addview", "fred"], empty, env, OUTSIDE),
        (["createdb"], empty, env, OUTSIDE),
        (["runtests"], empty, env, OUTSIDE),
        (["createproject", "1abc"], tmp_path, env,
         "Error: '1abc' is not a valid project name: use a Python identifier, e.g. my_project."),
        (["createproject", "os"], tmp_path, env,
         "Error: 'os' would shadow the importable module 'os'; choose another name."),
        # The current folder is on sys.path under python -m: still "already exists".
        (["createproject", "myprj"], tmp_path, env, "Error: Directory 'myprj' already exists."),
        (["addmodelview", "wilma", "name:string", "age:number"], root, env,
         "Error: Field type 'number' is unknown; use one of: string, text, integer, float, "
         "decimal, boolean, date, datetime, email, url."),
        (["addview", "fred"], root, env, "Error: Will not overwrite already existing file: "
                                         f"'{root.resolve() / 'views/fred.py'}' already exists."),
        (["help", "nope"], root, env,
         "Error: 'nope' is not a valid command. See robaccia-admin commands."),
        (["run", "--port", port], root, env, in_use),
        (["run", "--no-reload", "--port", port], root, env, in_use),
        (["serve", "--port", port], root, env, in_use),
        # serve checks what would fail later before it binds: the names the site answers to,
        (["serve", "--port", port], root, dict(env, ROBACCIA_ALLOWED_HOSTS=""),
         "Error: ALLOWED_HOSTS names no host: set the names this site is reached by, e.g. "
         "ROBACCIA_ALLOWED_HOSTS=example.com,www.example.com (settings.py reads it)."),
        # HTTPS without the proxy that says a request came over TLS (a redirect loop),
        (["serve", "--port", port], root, dict(env, ROBACCIA_HTTPS="1"),
         "Error: HTTPS is on but TRUSTED_PROXY is not set: serve speaks plain HTTP, so every "
         "request would be redirected to https:// again. Set ROBACCIA_TRUSTED_PROXY to the "
         "address of the proxy that terminates TLS."),
        # and secretkey never overwrites a key.
        (["secretkey"], root, env,
         f"Error: {root.resolve() / '.secret_key'} exists; a new key would void every signed "
         "cookie and form. Delete it first if that is what you want."),
    ]
    results = _run_all([job[:3] for job in jobs])
    for (args, _, _, message), result in zip(jobs, results, strict=True):
        assert "Traceback" not in result.stderr, args
        assert_one_line_error(result, message)
    assert tree(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "myprj"]


def test_a_fresh_checkout_without_its_key_is_told_how_to_make_one(tmp_path: Path) -> None:
    root = scaffold.create_project("myprj", tmp_path)
    (root / ".secret_key").unlink()  # as in a clone: .gitignore keeps it out
    env = project_env()
    env.pop("ROBACCIA_SECRET_KEY", None)
    refused = admin("serve", "--port", "1", cwd=root, env=env, check=False)
    assert_one_line_error(refused, (
        "Error: No SECRET_KEY: the project has no .secret_key file and ROBACCIA_SECRET_KEY is "
        "not set. Generate one with: robaccia-admin secretkey (a fresh checkout has none: the "
        "file is not in version control)."))
    made = admin("secretkey", cwd=root, env=env)
    assert made.stdout == " created .secret_key (keep it out of version control; .gitignore does)\n"
    key = (root / ".secret_key").read_text().strip()
    assert len(key) == 64 and (root / ".secret_key").stat().st_mode & 0o777 == 0o600
    printed = admin("secretkey", "--print", cwd=root, env=env).stdout.strip()
    assert len(printed) == 64 and printed != key
    assert (root / ".secret_key").read_text().strip() == key  # --print writes nothing


def test_check_deploy_reports_what_a_deployment_lacks(tmp_path: Path) -> None:
    root = scaffold.create_project("myprj", tmp_path)
    env = project_env()
    for name in ("ROBACCIA_ALLOWED_HOSTS", "ROBACCIA_HTTPS", "ROBACCIA_TRUSTED_PROXY"):
        env.pop(name, None)
    bare, short_hsts, dev = _run_all([
        (["check", "--deploy"], root, env),
        (["check", "--deploy"], root, dict(env, ROBACCIA_HTTPS="1", ROBACCIA_TRUSTED_PROXY="10.0.0.2",
                                           ROBACCIA_ALLOWED_HOSTS="example.com")),
        (["check"], root, env),
    ])
    assert [line.split()[0] for line in bare.stdout.splitlines()] == ["R007", "R008", "R010"]
    assert "no TLS and no per-client connection or rate limits" in bare.stdout
    assert bare.stderr == "Error: 3 finding(s).\n"
    assert (short_hsts.returncode, short_hsts.stdout) == (0, "No findings.\n")
    # without --deploy, what only concerns a deployment is not reported
    assert (dev.returncode, dev.stdout) == (0, "No findings.\n")
    settings = root / "settings.py"
    settings.write_text(settings.read_text().replace("HSTS_SECONDS = 2 * 365 * 24 * 3600",
                                                     "HSTS_SECONDS = 3600"))
    weak = admin("check", "--deploy", cwd=root, check=False, env=dict(
        env, ROBACCIA_HTTPS="1", ROBACCIA_TRUSTED_PROXY="10.0.0.2", ROBACCIA_ALLOWED_HOSTS="example.com"))
    assert weak.stdout.startswith("R009 HSTS_SECONDS is 3600")


def test_createdb_with_an_unusable_database_is_one_line(tmp_path: Path) -> None:
    root = scaffold.create_project("myprj", tmp_path)
    scaffold.add_model_view(root, "things", "json", ["name:string"])
    unreachable, bogus, garbled = _run_all([
        (["createdb"], root, project_env("postgresql+psycopg://nobody@127.0.0.1:1/x")),
        (["createdb"], root, project_env("bogus://x")),
        (["createdb"], root, project_env("not a url")),
    ])
    for result in (unreachable, bogus, garbled):
        assert result.returncode == 1
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert unreachable.stderr.startswith("Error: Could not reach the database: ")
    assert "Connection refused" in unreachable.stderr
    assert bogus.stderr.startswith("Error: The database URL is not valid: ")
    assert garbled.stderr.startswith("Error: The database URL is not valid: ")
    assert not (root / "database.db").exists()


# --- check --deploy ----------------------------------------------------------------------------


def test_check_deploy(tmp_path: Path) -> None:
    root = scaffold.create_project("myprj", tmp_path)
    env = project_env(ROBACCIA_HTTPS="1", ROBACCIA_TRUSTED_PROXY="127.0.0.1",
                      ROBACCIA_ALLOWED_HOSTS="example.com")
    env.pop("ROBACCIA_SECRET_KEY", None)
    clean, debug, weak = _run_all([
        (["check", "--deploy"], root, env),
        (["check", "--deploy"], root, dict(env, ROBACCIA_DEBUG="1")),
        (["check", "--deploy"], root, dict(env, ROBACCIA_SECRET_KEY="short")),
    ])
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "No findings.\n", "")
    assert debug.returncode == 1
    assert [line.split()[0] for line in debug.stdout.splitlines()] == ["R001"]
    assert debug.stdout.startswith("R001 DEBUG is on")
    assert debug.stderr == "Error: 1 finding(s).\n"
    assert weak.returncode == 1
    assert [line.split()[0] for line in weak.stdout.splitlines()] == ["R002"]
    assert weak.stderr == "Error: 1 finding(s).\n"
