"""The demo: an employees project with sample rows, as the README's first command.

    robaccia-admin demo          # scaffolds into a scratch folder and serves it

The employees have these fields, as ``addmodelview`` takes them:

    >>> FIELDS[:3]
    ['name:string:required', 'title:string', 'office_number:integer']
"""

from __future__ import annotations

import importlib
from pathlib import Path

from robaccia import scaffold

__all__ = ["build"]

FIELDS = ["name:string:required", "title:string", "office_number:integer", "hired:date",
          "remote:boolean"]
PEOPLE = [
    ("Ada Lovelace", "Analyst", 101, "2021-03-01", False),
    ("Grace Hopper", "Rear Admiral", 102, "2020-11-15", False),
    ("Alan Turing", "Researcher", 205, "2022-06-23", True),
    ("Katherine Johnson", "Mathematician", 207, "2019-08-26", False),
    ("Edsger Dijkstra", "Professor", 310, "2023-05-11", True),
    ("Barbara Liskov", "Architect", 311, "2018-11-07", False),
    ("Donald Knuth", "Author", None, "2024-01-10", True),
    ("Margaret Hamilton", "Director of Software", 404, "2017-08-17", False),
]


#: The file that marks a folder as a demo's (which the next demo may replace).
MARKER = ".robaccia-demo"


def build(parent: Path, engine: str = "genshi", name: str = "myproject") -> Path:
    """Create the demo project under ``parent`` (a previous demo there is replaced); return it."""
    if parent.exists() and any(parent.iterdir()):
        if not (parent / MARKER).is_file():
            raise scaffold.ScaffoldError(f"{parent} exists and is not a demo's folder: give another "
                                         "with --dir.")
        import shutil

        shutil.rmtree(parent)
    parent.mkdir(parents=True, exist_ok=True)
    (parent / MARKER).write_text("made by robaccia-admin demo; the next demo replaces this folder\n")
    root = scaffold.create_project(name, parent, engine)
    scaffold.add_model_view(root, "employees", "html", FIELDS)
    import datetime

    from robaccia.project import load_project

    project = load_project(root)
    dbconfig = importlib.import_module("dbconfig")
    table = importlib.import_module("models.employees").table
    dbconfig.metadata.create_all(project.engine)
    rows = [
        {"name": n, "title": t, "office_number": o, "hired": datetime.date.fromisoformat(h),
         "remote": r}
        for n, t, o, h, r in PEOPLE
    ]
    with dbconfig.engine.begin() as conn:
        conn.execute(table.insert(), rows)
    return root
