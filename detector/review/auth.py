"""Users, passwords and sign-in sessions of the review app, kept in the hazard store.

- Passwords: ``hashlib.scrypt`` with a random 16-byte salt, stored as ``scrypt$n$r$p$salt$hash``;
  checked in constant time, and an unknown name costs the same scrypt as a wrong password.
- Sessions: a random token in an HttpOnly, SameSite=Strict cookie; the store keeps only its
  SHA-256, so a copy of the database signs nobody in.
- Cross-site request forgery: each session has its own random token that the page sends back in
  the ``X-CSRF-Token`` header of every state-changing request (a cross-site form cannot set it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from detector.errors import InputError
from detector.store import HazardStore
from detector.store.db import now_text

ROLES = ("reviewer", "viewer")
RESERVED = {"tickets", "pipeline", "system"}  # actors the software itself writes into the audit trail
NAME = re.compile(r"^[\w.@-]{1,64}$")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_PASSWORD = 1024
KNOWN_PER_NAME = 8  # addresses remembered per user as ones it signed in from
KNOWN_S = 30 * 86400.0
MAX_TRACKED = 100_000  # names and addresses with failures before the stale ones are swept


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str

    @property
    def can_decide(self) -> bool:
        return self.role == "reviewer"


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires_at: float


def hash_password(
    password: str, salt: bytes | None = None, n: int = SCRYPT["n"], r: int = SCRYPT["r"], p: int = SCRYPT["p"]
) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored``; constant time in the comparison.

    >>> check_password("s3cret", hash_password("s3cret")), check_password("guess", hash_password("s3cret"))
    (True, False)
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hash_password(password[:MAX_PASSWORD], bytes.fromhex(salt), int(n), int(r), int(p))
    return hmac.compare_digest(candidate.rsplit("$", 1)[1], digest)


_DUMMY = hash_password("not a password")


def add_user(store: HazardStore, name: str, role: str, password: str) -> User:
    """Create a user, or replace the role and password of an existing one."""
    if not NAME.match(name):
        raise InputError(None, f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    if name.lower() in RESERVED:
        raise InputError(None, f"user name {name!r} is reserved for the software's own audit entries")
    if role not in ROLES:
        raise InputError(None, f"unknown role {role!r} (reviewer or viewer)")
    if not password.strip():
        raise InputError(None, "empty password (give it on standard input)")
    if len(password) > MAX_PASSWORD:
        raise InputError(None, f"password longer than {MAX_PASSWORD} characters")
    hashed = hash_password(password)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES (?,?,?,?)"
            " ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash",
            (name, role, hashed, now_text()),
        )
        # A new password signs out every session opened with the old one.
        row = conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (row["id"],))
    return User(int(row["id"]), name, role)


def has_users(store: HazardStore) -> bool:
    return bool(store.query("SELECT 1 FROM users LIMIT 1"))


def authenticate(store: HazardStore, name: str, password: str) -> User | None:
    rows = store.query("SELECT id, name, role, password_hash FROM users WHERE name = ?", (name,))
    if not rows:
        check_password(password, _DUMMY)  # same cost as a wrong password: no probing for names
        return None
    row = rows[0]
    if not check_password(password, row["password_hash"]):
        return None
    return User(int(row["id"]), row["name"], row["role"])


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: HazardStore, user: User, lifetime_s: float) -> tuple[str, Session]:
    """A new session for ``user``: the cookie token (never stored) and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = time.time() + lifetime_s
    with store.transaction() as conn:
        conn.execute("DELETE FROM sessions WHERE expires_at < ?", (time.time(),))
        conn.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?,?,?,?,?)",
            (_token_hash(token), user.id, csrf, now_text(), expires),
        )
    return token, Session(user, csrf, expires)


def find_session(store: HazardStore, token: str | None) -> Session | None:
    if not token or len(token) > 200:
        return None
    rows = store.query(
        "SELECT s.csrf, s.expires_at, u.id, u.name, u.role FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = ? AND s.expires_at > ?",
        (_token_hash(token), time.time()),
    )
    if not rows:
        return None
    r = rows[0]
    return Session(User(int(r["id"]), r["name"], r["role"]), r["csrf"], float(r["expires_at"]))


def close_session(store: HazardStore, token: str | None) -> None:
    if token:
        with store.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))


def csrf_ok(session: Session, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(session.csrf.encode(), header.encode())


class SignInThrottle:
    """Failed sign-ins counted per client address and per name over the last ``window_s``. In memory: one process.

    - An address with ``limit`` failures is refused until the oldest leaves the window: one client guesses at
      most ``limit`` passwords per window, whatever names it tries.
    - A name is slowed, never locked, and only by a guess spread over clients: once its failures come from
      ``limit`` different addresses, a try from elsewhere waits 1 s after the latest failure, twice as long for
      each failing address more, up to ``name_wait_max_s``. Failures from one address, however many and however
      spaced, slow the name nowhere else; and an address the user has signed in from (the last
      :data:`KNOWN_PER_NAME`, for ``known_s``) is never slowed, so strangers cannot keep the user out.

    >>> now = [100.0]
    >>> throttle = SignInThrottle(limit=2, window_s=60.0, name_wait_max_s=30.0, clock=lambda: now[0])
    >>> throttle.failed("10.0.0.7", "rita"); throttle.failed("10.0.0.7", "rita")
    >>> [throttle.wait_s(address, name) for address, name in [("10.0.0.7", "victor"), ("10.0.0.8", "rita")]]
    [60.0, 0.0]
    >>> throttle.succeeded("10.0.0.8", "rita"); throttle.failed("10.0.0.9", "rita")  # a second address fails
    >>> [throttle.wait_s(address, "rita") for address in ("10.0.0.5", "10.0.0.8")]  # a stranger slowed, not rita
    [1.0, 0.0]
    >>> now[0] += 1.0; throttle.wait_s("10.0.0.5", "rita")
    0.0
    """

    def __init__(
        self,
        limit: int = 5,
        window_s: float = 900.0,
        name_wait_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        known_s: float = KNOWN_S,
    ) -> None:
        self.limit, self.window_s, self.name_wait_max_s, self.clock = limit, window_s, name_wait_max_s, clock
        self.known_s = known_s
        # failures as (when, the other party): by address (the name tried), by name (the address it came from)
        self._by_address: dict[str, list[tuple[float, str]]] = {}
        self._by_name: dict[str, list[tuple[float, str]]] = {}
        self._known: dict[str, dict[str, float]] = {}  # name -> address -> when its user last signed in from it

    def _recent(self, table: dict[str, list[tuple[float, str]]], key: str, now: float) -> list[tuple[float, str]]:
        entries = [e for e in table.get(key, []) if now - e[0] < self.window_s]
        if entries:
            table[key] = entries
        else:
            table.pop(key, None)
        return entries

    def _known_address(self, name: str, address: str, now: float) -> bool:
        when = self._known.get(name, {}).get(address)
        return when is not None and now - when < self.known_s

    def wait_s(self, address: str, name: str) -> float:
        """Seconds until a sign-in from ``address`` as ``name`` is heard again (0: now)."""
        now = self.clock()
        wait = 0.0
        by_address = self._recent(self._by_address, address, now)
        if len(by_address) >= self.limit:
            wait = by_address[-self.limit][0] + self.window_s - now
        by_name = self._recent(self._by_name, name, now)
        spread = len({a for _, a in by_name})
        if spread >= self.limit and not self._known_address(name, address, now):
            slowdown = min(self.name_wait_max_s, 2.0 ** (spread - self.limit))
            wait = max(wait, by_name[-1][0] + slowdown - now)
        return max(wait, 0.0)

    def failed(self, address: str, name: str) -> None:
        now = self.clock()
        if len(self._by_address) + len(self._by_name) > MAX_TRACKED:  # many names or addresses: forget the stale
            for table in (self._by_address, self._by_name):
                for key in list(table):
                    self._recent(table, key, now)
        self._by_address[address] = [*self._recent(self._by_address, address, now), (now, name)]
        self._by_name[name] = [*self._recent(self._by_name, name, now), (now, address)]

    def succeeded(self, address: str, name: str) -> None:
        """``name``'s user signed in from ``address``: a guess spread over other addresses never slows it there."""
        known = self._known.setdefault(name, {})
        known.pop(address, None)
        known[address] = self.clock()
        for oldest in list(known)[:-KNOWN_PER_NAME]:
            del known[oldest]
