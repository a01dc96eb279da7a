"""The recipients list: a company's people in name order, 25 at a time, searched by any part of a name or address.

Pages are found by keyset — the rows after (or before) the boundary person in (lower(name), id) order, read from
the index on (company_id, lower(name), id) — so the last page costs what the first does, however big the company.
The page number is a label carried in the links; a bare ``?page=N`` (a typed or old link) still works by offset.

Search keeps the same order. First the next rows in name order are read up to a budget (common words fill a page
long before it runs out); when fewer than a page of them match, the matches are taken from the trigram index
instead (SQLite: the FTS5 table ``user_search``; PostgreSQL: pg_trgm on lower(name) || chr(31) || lower(email)),
which is fast exactly when matches are rare. Searches under 3 characters cannot use trigrams and scan.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import String, and_, func, or_, select, text

from ..derived import CompanyTally
from ..extensions import db
from ..models import User
from .recipients import page_number, person_id

PER_PAGE = 25
BUDGET = 500         # people read in name order before a search turns to the trigram index
COUNT_ALL = 5000     # companies up to this size get an exact count of matches (one short scan)


@dataclass(frozen=True)
class Request:
    """Which page: the first, the one after or before a person (by id), the last, or page ``number`` by offset."""

    number: int = 1
    after: int | None = None
    before: int | None = None
    last: bool = False


def request_from(args) -> Request:
    """The page asked for by a query string (``page``, ``after``, ``before``, ``last``); odd values mean page 1."""
    return Request(number=page_number(args.get("page")), after=person_id(args.get("after")),
                   before=person_id(args.get("before")), last=args.get("page") == "last")


@dataclass(frozen=True)
class Page:
    """One page of people, with what its links need."""

    items: list[User]
    number: int | None       # None: the last page of a search whose matches were not counted
    total: int | None        # people (matching); None when a search's matches were not counted
    has_prev: bool
    has_next: bool
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int | None:
        """How many pages there are (None when not counted)."""
        return None if self.total is None else max(1, -(-self.total // self.per_page))

    @property
    def first_id(self) -> int | None:
        """The first person's id (the "Previous" link's boundary)."""
        return self.items[0].id if self.items else None

    @property
    def last_id(self) -> int | None:
        """The last person's id (the "Next" link's boundary)."""
        return self.items[-1].id if self.items else None


def _escape(text_: str) -> str:
    # LIKE wildcards typed by the person are searched for literally.
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(query: str, who=User):
    """``who``'s name or email contains ``query`` (any case)."""
    pattern = f"%{_escape(query.lower())}%"
    if db.engine.dialect.name == "postgresql":  # the very expression pg_trgm indexes
        joined = func.lower(who.name) + func.chr(31, type_=String) + func.lower(who.email)
        return joined.like(pattern, escape="\\")
    return or_(func.lower(who.name).like(pattern, escape="\\"), func.lower(who.email).like(pattern, escape="\\"))


def _trigram_match(company_id: int, query: str):
    """A condition "User.id is among the trigram index's matches", or None when no index can serve this search."""
    if len(query) < 3:
        return None
    dialect = db.engine.dialect.name
    if dialect == "sqlite" and _has_fts():
        phrase = '"' + query.lower().replace('"', '""') + '"'
        return User.id.in_(select(text("rowid")).select_from(text("user_search"))
                           .where(text("user_search MATCH :phrase").bindparams(phrase=phrase)))
    if dialect == "postgresql":
        found = select(User.id).where(User.company_id == company_id, _like(query)).cte("matches") \
            .prefix_with("MATERIALIZED", dialect="postgresql")
        return User.id.in_(select(found.c.id))
    return None


def _has_fts() -> bool:
    app = current_app
    found = app.extensions.get("panel_people_fts")
    if found is None:
        found = db.session.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'user_search'")).first() is not None
        app.extensions["panel_people_fts"] = found
    return found


def _past(boundary, backwards: bool):
    name, uid = boundary
    if backwards:
        return or_(func.lower(User.name) < name, and_(func.lower(User.name) == name, User.id < uid))
    return or_(func.lower(User.name) > name, and_(func.lower(User.name) == name, User.id > uid))


def _order(who, backwards: bool, by_index: bool = True) -> list:
    # by_index=False: the same order, written so the planner cannot walk the name index for it. Used when the rows
    # come from the trigram index: SQLite would otherwise walk the whole company in name order to honour LIMIT.
    keys = [func.lower(who.name) if by_index else func.lower(who.name) + "", who.id]
    return [k.desc() for k in keys] if backwards else keys


def _rows(conditions, backwards: bool, limit: int, offset: int = 0, by_index: bool = True) -> list[User]:
    rows = list(db.session.execute(select(User).where(*conditions).order_by(*_order(User, backwards, by_index))
                                   .limit(limit).offset(offset)).scalars())
    return rows[::-1] if backwards else rows


def _search(company_id: int, query: str, cursor: list, backwards: bool, limit: int) -> tuple[list[User], bool]:
    """Up to ``limit`` matching people past ``cursor``, and whether the trigram index had to find them."""
    base = [User.company_id == company_id, *cursor]
    # One walk in name order that also says which of the people it passes match (no list of ids sent back).
    walk = db.session.execute(select(User.id, _like(query).label("hit")).where(*base)
                              .order_by(*_order(User, backwards)).limit(BUDGET)).all()
    hits = [row.id for row in walk if row.hit][:limit]
    near = _rows([User.id.in_(hits)], backwards, limit) if hits else []
    if len(near) == limit or len(walk) < BUDGET:
        return near, False  # a page found near the cursor, or nobody further: the walk saw them all
    matched = _trigram_match(company_id, query)
    if matched is None:
        return _rows([*base, _like(query)], backwards, limit), True
    return _rows([*base, matched], backwards, limit, by_index=False), True


def _count(company_id: int, people: int, query: str, sparse: bool) -> int | None:
    """The company's people (a tally), or those matching ``query`` when that is cheap to count."""
    if not query:
        return people
    # Every match when the company is small; else few matches, counted from the trigram index (up to COUNT_ALL).
    matched = _like(query) if people <= COUNT_ALL else _trigram_match(company_id, query) if sparse else None
    if matched is None:
        return None
    inner = select(User.id).where(User.company_id == company_id, matched).limit(COUNT_ALL + 1).subquery()
    found = db.session.execute(select(func.count()).select_from(inner)).scalar_one()
    return found if found <= COUNT_ALL or people <= COUNT_ALL else None


def _boundary(company_id: int, person_id: int | None):
    if person_id is None:
        return None
    row = db.session.execute(select(func.lower(User.name), User.id).where(User.company_id == company_id,
                                                                          User.id == person_id)).first()
    return tuple(row) if row else None


def _pages(total: int | None, per_page: int) -> int | None:
    return None if total is None else max(1, -(-total // per_page))


def find(company_id: int, query: str = "", want: Request = Request(), per_page: int = PER_PAGE) -> Page:
    """The page ``want`` of the company's people matching ``query`` (name or email), in name order.

    A page past the end shows the last page, so a stale link after people were removed still shows someone.
    """
    people = db.session.execute(select(CompanyTally.people).where(CompanyTally.company_id == company_id)).scalar() or 0
    went_sparse = False

    def fetch(cursor: list, backwards: bool, n: int) -> list[User]:
        nonlocal went_sparse
        if not query:
            return _rows([User.company_id == company_id, *cursor], backwards, n)
        rows, went_sparse = _search(company_id, query, cursor, backwards, n)
        return rows

    def counted() -> int | None:
        return _count(company_id, people, query, went_sparse)

    after, before = _boundary(company_id, want.after), _boundary(company_id, want.before)
    if after is not None:
        rows = fetch([_past(after, False)], False, per_page + 1)
        return Page(rows[:per_page], want.number, counted(), True, len(rows) > per_page, per_page)
    if before is not None:
        rows = fetch([_past(before, True)], True, per_page + 1)
        return Page(rows[-per_page:], max(1, want.number), counted(), len(rows) > per_page, True, per_page)
    total = counted()
    if want.last or (total is not None and want.number > _pages(total, per_page)):
        size = per_page if total is None else total - (_pages(total, per_page) - 1) * per_page
        rows = fetch([], True, size + 1) if size > 0 else []
        total = counted() if total is None else total
        return Page(rows[-size:] if size > 0 else [], _pages(total, per_page), total, len(rows) > size, False,
                    per_page)
    if want.number > 1:  # a plain page number (typed, or a link from before keyset pages): by offset
        rows = _rows([User.company_id == company_id, *([_like(query)] if query else [])], False, per_page + 1,
                     (want.number - 1) * per_page)
        return Page(rows[:per_page], want.number, total, True, len(rows) > per_page, per_page)
    rows = fetch([], False, per_page + 1)
    if total is None:
        total = counted() if len(rows) > per_page else len(rows)
    return Page(rows[:per_page], 1, total, False, len(rows) > per_page, per_page)
