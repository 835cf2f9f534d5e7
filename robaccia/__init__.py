"""robaccia: a WSGI framework in which every resource is a RESTful collection.

    >>> import robaccia
    >>> robaccia.find_renderer('json') is robaccia.render
    True

The public names live in small modules and are re-exported here:
:mod:`robaccia.wsgidispatcher` (routes), :mod:`robaccia.wsgicollection` (the
handler protocol), :mod:`robaccia.defaultcollection` and
:mod:`robaccia.defaultmodelcollection` (the conventions),
:mod:`robaccia.request`, :mod:`robaccia.renderers`, :mod:`robaccia.parsers`,
:mod:`robaccia.errors`, :mod:`robaccia.middleware` and :mod:`robaccia.project`.
"""

from robaccia.defaultcollection import DefaultCollection
from robaccia.defaultmodelcollection import DefaultModelCollection, flash
from robaccia.errors import HTTPError, HTTPException, RobacciaError
from robaccia.fields import Invalid
from robaccia.parsers import Limits, find_parser, form_parser, json_parser
from robaccia.project import Project, deferred_collection, load_project
from robaccia.renderers import Templates, configure, find_renderer, render
from robaccia.request import Request
from robaccia.wsgicollection import Collection
from robaccia.wsgidispatcher import Dispatcher

__version__ = "0.2.0.dev0"

#: The representation types a view can have.
extensions = ("html", "json")

__all__ = [
    "Collection",
    "DefaultCollection",
    "DefaultModelCollection",
    "Dispatcher",
    "HTTPError",
    "HTTPException",
    "Invalid",
    "Limits",
    "Project",
    "Request",
    "RobacciaError",
    "Templates",
    "configure",
    "deferred_collection",
    "extensions",
    "find_parser",
    "find_renderer",
    "flash",
    "form_parser",
    "json_parser",
    "load_project",
    "render",
]
