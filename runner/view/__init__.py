"""The local viewer (``runner view``): the runs of a database in a browser, read-only,
over the reports' templates."""

from __future__ import annotations

from runner.view.app import Viewer, make_viewer_environment
from runner.view.server import ViewServer, serve

__all__ = ["ViewServer", "Viewer", "make_viewer_environment", "serve"]
