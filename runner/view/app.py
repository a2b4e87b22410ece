"""The viewer as a WSGI application (werkzeug): routes -> page contexts -> the reports' templates.

Every response carries a strict Content-Security-Policy: no inline script or style at all (the pages
link ``/static/`` files from 'self'), no frames, no form posting elsewhere. Provider output reaches the
pages only through the autoescaping environment of ``runner.report.render``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from runner.errors import NotFoundError, StorageError
from runner.report.api import build_cost_report, build_diff_report, build_trend_report
from runner.report.render import make_environment, reports_dir
from runner.store import repository
from runner.store.repository import browse
from runner.store.repository.pages import SORT_KEYS, STATUSES, UnitQuery
from runner.view import pages

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from wsgiref.types import StartResponse, WSGIEnvironment

    from jinja2 import Environment
    from sqlalchemy.orm import Session

    from runner.store.db import Database
    from runner.store.records import RunInfo

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC: Final = {
    "report.css": ("", "text/css"),
    "view.css": ("view", "text/css"),
    "view.js": ("view", "text/javascript"),
}
LOG: Final = logging.getLogger("runner.view")
TREND_RUNS: Final = 10  # runs on the trend page (as `runner trend`'s default)
# Beyond these, the page names the command that writes the report instead. Both read lean (figures,
# answers as digests), about 40 us a unit here: some 4 s for two 50,000-unit runs, 6 s for 200,000 units.
DIFF_UNITS_MAX: Final = 50_000  # per run
TREND_UNITS_MAX: Final = 200_000  # over the trend's runs
ROUTES: Final = Map(
    [
        Rule("/", endpoint="index"),
        Rule("/runs/<run_id>", endpoint="run"),
        Rule("/runs/<run_id>/units/<path:key>", endpoint="unit"),
        Rule("/runs/<run_id>/diff", endpoint="diff"),
        Rule("/runs/<run_id>/trend", endpoint="trend"),
        Rule("/runs/<run_id>/cost", endpoint="cost"),
        Rule("/static/<name>", endpoint="static"),
    ]
)


def make_viewer_environment() -> Environment:
    """The reports' environment, its loader looking in ``reports/view`` first: the viewer's own
    ``_base.html`` (linked stylesheet and script, no inline style) frames the reports' templates."""
    env = make_environment(directory=[reports_dir() / "view", reports_dir()])
    env.globals["viewer"] = True  # the shared partials leave out what needs inline style
    env.filters["text"] = _text
    return env


def _text(data: bytes) -> str:
    """Raw stream bytes as text (a broken UTF-8 sequence shows as U+FFFD; ``visible`` shows controls)."""
    return data.decode("utf-8", "replace")


class Viewer:
    """The WSGI application: one read-only session per request on ``database``."""

    def __init__(self, database: Database, env: Environment | None = None) -> None:
        self.database = database
        self.env = env or make_viewer_environment()
        self._handlers: dict[str, Callable[..., Response]] = {
            "index": self._index,
            "run": self._run,
            "unit": self._unit,
            "diff": self._diff,
            "trend": self._trend,
            "cost": self._cost,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception:
            # A bug of ours: the page says so in our own frame (werkzeug's 500 page would go out without
            # the security headers); the traceback goes to the server's log, never to the browser.
            LOG.exception("runner view: %s %s failed", request.method, request.path)
            response = Response(
                "runner view: this page failed (a bug: the server's log has the details)\n",
                status=500,
                content_type="text/plain; charset=utf-8",
            )
        response.headers.update(HEADERS)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = ROUTES.bind_to_environ(request.environ).match()
            if endpoint == "static":
                return _static(args["name"])
            if request.method not in ("GET", "HEAD"):
                return Response("read-only viewer: GET only\n", status=405, headers={"Allow": "GET, HEAD"})
            with self.database.session() as session:
                return self._handlers[endpoint](session, request, **args)
        except NotFoundError as exc:
            # No such run or unit (the message names the closest ones): the reader's typo, not ours.
            return self._message(pages.Chrome(title="Not found"), str(exc), status=404)
        except StorageError as exc:
            # The database failed (locked past the busy timeout, gone, a server restart): try again later.
            return self._message(pages.Chrome(title="Database error"), str(exc), status=503)
        except HTTPException as exc:
            return self._message(pages.Chrome(title=exc.name), exc.name, status=exc.code or 500)

    def _page(self, template: str, chrome: pages.Chrome, *, status: int = 200, **values: Any) -> Response:
        # Templates get ``chrome`` (the frame), ``view`` (a viewer page) and ``report`` (a report's context).
        values = {"view": None, "report": None} | values
        html = self.env.get_template(template).render(chrome=chrome, **values)
        return Response(html, status=status, content_type="text/html; charset=utf-8")

    def _index(self, session: Session, request: Request) -> Response:
        args = request.args
        status = args.get("status") or None
        last = _int(args.get("last"), 50, 1, 1000)
        page = pages.index_page(session, job=args.get("job") or None, status=status, last=last)
        return self._page(page.template, page.chrome, view=page)

    def _run(self, session: Session, request: Request, run_id: str) -> Response:
        args = request.args
        sort = args.get("sort", "status")
        status = args.get("status") or None
        query = UnitQuery(
            provider=args.get("provider") or None,
            status=status if status in STATUSES else None,
            case_contains=args.get("case") or None,
            sort=sort if sort in SORT_KEYS else "status",
            descending=args.get("desc") == "1",
            offset=_int(args.get("offset"), 0, 0, 10**9),
            limit=_int(args.get("limit"), 100, 1, max(pages.PAGE_SIZES)),
        )
        page = pages.run_page(session, run_id, query)
        links = functools.partial(pages.unit_href, page.summary.run.id)
        return self._page(page.template, page.chrome, view=page, report=page.full, unit_href=links)

    def _unit(self, session: Session, request: Request, run_id: str, key: str) -> Response:
        page = pages.unit_page_view(session, run_id, key)
        links = functools.partial(pages.unit_href, page.detail.run.id)
        return self._page(page.template, page.chrome, view=page, unit_href=links)

    def _diff(self, session: Session, request: Request, run_id: str) -> Response:
        run, units = _run_and_size(session, run_id)
        against = request.args.get("against")
        if not against:
            raise NotFound()
        other, other_units = _run_and_size(session, against)
        chrome = pages.report_chrome(run, f"Diff against {other.id}")
        if max(units, other_units) > DIFF_UNITS_MAX:
            return self._too_large(chrome, f"runner diff {other.id} {run.id}")
        report = build_diff_report(session, other.id, run.id)
        return self._page(report.template, chrome, report=report)

    def _trend(self, session: Session, request: Request, run_id: str) -> Response:
        run, _ = _run_and_size(session, run_id)
        chrome = pages.report_chrome(run, f"Trend of {run.job_name}")
        runs = repository.list_runs(session, job_name=run.job_name, limit=TREND_RUNS)
        if sum(_run_and_size(session, info.id)[1] for info in runs) > TREND_UNITS_MAX:
            return self._too_large(chrome, f"runner trend {run.job_name}")
        report = build_trend_report(session, run.job_name, last=TREND_RUNS)
        return self._page(report.template, chrome, report=report)

    def _cost(self, session: Session, request: Request, run_id: str) -> Response:
        run, _ = _run_and_size(session, run_id)
        chrome = pages.report_chrome(run, "Cost")
        report = build_cost_report(session, by=("provider", "day"), since=run.started_at)
        return self._page(report.template, chrome, report=report)

    def _too_large(self, chrome: pages.Chrome, command: str) -> Response:
        return self._message(
            chrome, f"Too many units to load in the viewer; write this report with: {command}"
        )

    def _message(self, chrome: pages.Chrome, message: str, *, status: int = 200) -> Response:
        return self._page("view_message.html", chrome, status=status, message=message)


def _run_and_size(session: Session, ref: str) -> tuple[RunInfo, int]:
    """Run ``ref`` (a StorageError naming the closest ids if none) and its unit count, from one
    indexed GROUP BY: enough to decide whether a report may load the run whole."""
    run = browse.get_run_or_hint(session, ref)
    return run, sum(repository.unit_counts(session, run.id).values())


def _int(value: str | None, default: int, low: int, high: int) -> int:
    """A query parameter as an int in [low, high]; anything else is the default (never an error page)."""
    try:
        return min(max(int(value), low), high) if value is not None else default
    except ValueError:
        return default


def _static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound()
    folder, mimetype = STATIC[name]
    path = Path(reports_dir(), folder, name)
    return Response(path.read_bytes(), mimetype=mimetype)
