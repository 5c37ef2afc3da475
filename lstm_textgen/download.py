"""Downloads, for the stages that fetch their input. GUTENBERG_MIRROR, for offline machines, is
tried before any other source: an http(s) URL template with {id} (books only), or a directory,
local or http, holding the files by name.

Whatever the source (a local file, a directory mirror, an URL), a body is kept only if it is
text: an empty file or an HTML page (a login, error or "moved" page) is refused and the next
source is tried; nothing is written in its place.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

from lstm_textgen.errors import UserError
from lstm_textgen.files import atomic_path

MIRROR_ENV = "GUTENBERG_MIRROR"
MIRROR_HINT = ("Check the network, or set GUTENBERG_MIRROR to a URL template with {id} or to a directory "
               "(local or http) holding the file (see docs/own-text.md).")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_MAX = 120  # seconds; a server asking for longer is down: better to move on soon
HTML_STARTS = (b"<!doctype html", b"<html")
HTML_PAGE = "an HTML page, not a plain-text file (a login or error page?)"
# Compressed bodies served as text (no Content-Encoding): told by their first bytes, and refused,
# so that no undecoded bytes are ever kept as a text.
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}
# Downloads at once (fetch_many), and the connections a stage's session keeps open to a host. A
# few hide each request's round trips and the server's time to first byte; more would mostly
# share the same bandwidth, and Project Gutenberg asks robots to go gently on its servers.
POOL_SIZE = 4


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _mirror_source(filename: str, **fields) -> str | None:
    """Where GUTENBERG_MIRROR says `filename` is, or None when it is unset or does not apply
    (a template for books, and this file has no {id}). A mirror directory that does not exist
    is an error at once, before anything is downloaded."""
    override = os.environ.get(MIRROR_ENV)
    if not override:
        return None
    if "{" in override:
        try:
            return override.format(**fields)
        except KeyError:  # a template for books; this file has no {id}
            return None
        except (IndexError, ValueError):
            raise UserError(f"{MIRROR_ENV}={override!r} is not a valid URL template: write {{id}} where the "
                            "book number goes, or give a directory")
    if not is_url(override) and not Path(override).is_dir():
        where = "" if Path(override).is_absolute() else f" ({Path(override).absolute()})"
        problem = "is a file, not a directory" if Path(override).exists() else "does not exist"
        raise UserError(f"{MIRROR_ENV} is set to {override}{where}, which {problem}: point it at a directory "
                        f"holding the files (such as {filename}), or unset it to use the params' sources")
    return f"{override.rstrip('/')}/{filename}"


def with_mirror(urls: list[str], filename: str, **fields) -> list[str]:
    """`urls`, with the GUTENBERG_MIRROR source for `filename` first when it is set."""
    source = _mirror_source(filename, **fields)
    return urls if source is None else [source, *urls]


def mirror_hint(filename: str, **fields) -> str:
    """The last line of a failed download's error: what to check, given GUTENBERG_MIRROR."""
    override = os.environ.get(MIRROR_ENV)
    if not override:
        return MIRROR_HINT
    source = _mirror_source(filename, **fields)
    if source is None:
        return (f"{MIRROR_ENV} is set to {override}, a template for books, so it was not used for {filename}. "
                f"Check the network, or point {MIRROR_ENV} at a directory (local or http) holding {filename}.")
    return (f"{MIRROR_ENV} is set to {override} and was tried first (as {source}): check that it holds "
            f"{filename}, and check the network.")


def refusal(path: str | os.PathLike) -> str | None:
    """Why the file at `path` is not a text file worth keeping (empty, compressed, or an HTML
    page), or None."""
    with open(path, "rb") as f:
        head, more = f.read(4096), f.read(1)
    if kind := next((name for magic, name in COMPRESSED.items() if head.startswith(magic)), None):
        return (f"a {kind}-compressed file, not plain text; decompress it first, or use the plain-text file "
                "(a book's \"Plain Text UTF-8\" URL)")
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start and not more:
        return "an empty file" + (" (0 bytes)" if not head else " (only whitespace)")
    if start[:16].lower().startswith(HTML_STARTS):
        return HTML_PAGE
    return None


class _Refused(Exception):
    pass


def _write_checked(dest, write) -> str | None:
    """write(tmp) a temporary file beside `dest`, renamed to `dest` only if it passes refusal();
    otherwise removed, and the reason returned."""
    try:
        with atomic_path(dest) as tmp:
            write(tmp)
            reason = refusal(tmp)
            if reason:
                raise _Refused(reason)
    except _Refused as refused:
        return str(refused)
    return None


def describe(err: BaseException, timeout: float | None = None) -> str:
    """One short line for a failed request, "Kind: gist", without urllib3's object reprs."""
    from urllib3 import exceptions as u

    inner = err
    if not isinstance(inner, u.HTTPError) and inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]  # requests wraps urllib3's error
    if isinstance(inner, u.MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    cause = inner.__cause__
    within = f" within {timeout:g}s" if timeout else ""
    if isinstance(inner, u.NameResolutionError):
        host = getattr(getattr(inner, "conn", None), "host", None) or "the host"
        gist = f" ({cause.strerror})" if isinstance(cause, OSError) and cause.strerror else ""
        return f"NameResolutionError: {host} does not resolve{gist}; not retried"
    if isinstance(inner, u.NewConnectionError):
        gist = cause.strerror if isinstance(cause, OSError) and cause.strerror else "failed"
        return f"ConnectionError: could not connect ({gist})"
    if isinstance(inner, u.ConnectTimeoutError):
        return f"ConnectTimeout: no connection{within}"
    if isinstance(inner, u.ReadTimeoutError):
        return f"ReadTimeout: no answer{within}"
    if isinstance(inner, u.ProtocolError):
        detail = next((a for a in inner.args[1:] if isinstance(a, BaseException)), None)
        if isinstance(detail, u.IncompleteRead):
            return f"ConnectionError: connection dropped after {detail.partial:,} bytes, {detail.expected:,} short"
        return "ConnectionError: connection dropped" + (f" ({type(detail).__name__})" if detail else "")
    kind = "SSLError" if isinstance(inner, u.SSLError) else type(inner).__name__
    text = re.sub(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*", "", str(inner)).strip().splitlines()
    gist = text[0] if text else ""
    return f"{kind}: {gist[:150]}" if gist else kind


@functools.cache
def _retry_class():
    """urllib3's Retry, which does the backoff, the status list and Retry-After, plus: one short
    line on stderr per retry, and a host name that does not resolve is not retried."""
    from urllib3.exceptions import MaxRetryError, NameResolutionError
    from urllib3.util.retry import Retry

    class Retries(Retry):
        note: dict = {}  # {"label", "timeout", "attempts": tries made at the last failure}, shared by copies

        def new(self, **kw):
            copy = super().new(**kw)
            copy.note = self.note
            return copy

        def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
            self.note["attempts"] = len(self.history) + 1
            if isinstance(error, NameResolutionError):  # retrying will not make the name exist
                raise MaxRetryError(_pool, url, error) from error
            return super().increment(method, url, response, error, _pool, _stacktrace)

        def sleep(self, response=None):
            last = self.history[-1]
            reason = f"HTTP {last.status}" if last.status else describe(last.error, self.note["timeout"])
            after = self.get_retry_after(response) if response is not None and self.respect_retry_after_header \
                else None
            wait = f"{after:g}s (Retry-After)" if after else f"{self.get_backoff_time():g}s"
            done = len(self.history)
            print(f"{self.note['label']}: {reason}; retrying in {wait} (attempt {done + 1} of "
                  f"{done + 1 + self.total})", file=sys.stderr)
            super().sleep(response)

    return Retries


@functools.cache
def _adapter_class():
    """requests' HTTPAdapter, but each thread's requests retry by that thread's own Retry: the
    downloads that run at once share one pool of connections, each with its own budget of
    retries and its own label on the retry lines."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class PerThreadRetries(HTTPAdapter):
        local = threading.local()

        @property
        def max_retries(self):
            return getattr(self.local, "retries", None) or Retry(0, read=False)

        @max_retries.setter
        def max_retries(self, retries):
            self.local.retries = retries

    return PerThreadRetries


def http_session(connections: int = POOL_SIZE):
    """The one requests.Session of a stage's downloads: it keeps up to `connections` open to each
    host and reuses them from one download to the next, where a new connection would cost a round
    trip more (two more for TLS) before the first byte."""
    import requests  # only the download stages pay for importing it

    session = requests.Session()
    adapter = _adapter_class()(pool_connections=connections, pool_maxsize=connections)
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    return session


def _after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""


def _fetch_http(url: str, dest, what: str, attempts: int, timeout: float, backoff: float, progress,
                session) -> str | None:
    """Download `url` to `dest` through `session` (http_session()); None if done, else why not.
    urllib3's Retry retries connections, timeouts and the status list; a body that breaks off is
    retried here, from the same budget. Bytes are counted on `progress` (anything with
    update(n)), or on a bar of this file's own."""
    import requests
    from tqdm import tqdm
    from urllib3.exceptions import HTTPError, MaxRetryError

    retries = _retry_class()(
        total=attempts - 1, connect=attempts - 1, read=attempts - 1, status=attempts - 1, other=0,
        status_forcelist=RETRYABLE_STATUS, backoff_factor=backoff, respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_MAX, raise_on_status=False)
    retries.note = {"label": f"{what}: {url}", "timeout": timeout, "attempts": 1}

    def save(resp, tmp):
        length = resp.headers.get("Content-Length", "")
        own = None if progress else tqdm(total=int(length) if length.isdigit() else None, unit="B", unit_scale=True,
                                         desc=Path(dest).name, file=sys.stderr, disable=None, leave=False)
        with open(tmp, "wb") as f, own or contextlib.nullcontext():
            for chunk in resp.iter_content(chunk_size=1 << 16):
                f.write(chunk)
                (progress or own).update(len(chunk))

    adapter = session.get_adapter(url)
    while True:
        adapter.max_retries = retries  # this thread's download retries by its own Retry
        try:
            with session.get(url, stream=True, timeout=timeout) as resp:
                retries = resp.raw.retries or retries
                tried = len(retries.history) + 1
                if resp.status_code >= 400:
                    return f"HTTP {resp.status_code} {resp.reason}" + _after(tried)
                if "html" in resp.headers.get("Content-Type", "").lower():
                    return f"served {HTML_PAGE}"
                try:
                    refused = _write_checked(dest, lambda tmp: save(resp, tmp))
                except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as err:
                    cause = err.args[0] if err.args and isinstance(err.args[0], Exception) else err
                    try:  # the body broke off: count it as urllib3 would, and try again
                        retries = retries.increment("GET", url, error=cause)
                    except MaxRetryError:
                        return describe(err, timeout) + _after(tried)
                    retries.sleep()
                    continue
                return f"served {refused}" if refused else None
        except (requests.RequestException, HTTPError) as err:
            return describe(err, timeout) + _after(retries.note["attempts"])


def fetch(urls: list[str], dest: str | os.PathLike, what: str, *, hint: str = "",
          attempts: int = 4, timeout: float = 30.0, backoff: float = 1.0, progress=None, session=None) -> str:
    """Download the first of `urls` that serves a text file to `dest`; return the URL used.

    A URL may also be a local file path (copied). Up to `attempts` tries per URL: timeouts,
    dropped connections, bodies shorter than their Content-Length and 408/425/429/5xx are retried,
    waiting `backoff` × 2^n seconds (urllib3's schedule) or what Retry-After asks; 4xx, a host
    name that does not resolve, and an empty or HTML body move on to the next URL at once. On
    failure, one UserError names `what` and every URL tried with its reason, then `hint`; `dest`
    is never left half-written, nor written with a refused body. The bytes are counted on
    `progress` (anything with update(n)) when given, else on a progress bar of their own. HTTP
    goes through `session` (http_session()) when given, else through one of this call's own.
    """
    failures = []
    with contextlib.ExitStack() as own:
        for url in urls:
            if is_url(url):
                session = session or own.enter_context(http_session(1))
                reason = _fetch_http(url, dest, what, max(attempts, 1), timeout, backoff, progress, session)
            elif Path(url).is_file():
                reason = _write_checked(dest, lambda tmp: shutil.copyfile(url, tmp))
                if reason is None and progress:
                    progress.update(Path(dest).stat().st_size)
            else:
                reason = "no such file"
            if reason is None:
                return url
            failures.append(f"{url}: {reason}")
    raise UserError(f"could not download {what}; tried:\n  " + "\n  ".join(failures)
                    + (f"\n{hint}" if hint else ""))


class Download(NamedTuple):
    what: str         # for messages: "Gutenberg book 11"
    urls: list[str]   # tried in order
    dest: Path


class SharedBar:
    """One progress bar for downloads running at once: the bytes as they arrive, and how many
    files are done in its label. Threads update it, hence the lock."""

    def __init__(self, files: int, label: str):
        from tqdm import tqdm
        self.files, self.label, self.done, self.lock = files, label, 0, threading.Lock()
        self.bar = tqdm(unit="B", unit_scale=True, desc=self._desc(), file=sys.stderr, disable=None)

    def _desc(self) -> str:
        return f"{self.label}: {self.done}/{self.files}"

    def update(self, n: int) -> None:
        with self.lock:
            self.bar.update(n)

    def file_done(self) -> None:
        with self.lock:
            self.done += 1
            self.bar.set_description(self._desc())

    def close(self) -> None:
        self.bar.close()


def fetch_many(downloads: list[Download], label: str, **fetch_args) -> tuple[dict[Path, str], dict[Path, str]]:
    """fetch() every download, POOL_SIZE at a time, through one session (its connections reused
    from one download to the next), under one progress bar (`label`: what the files are). A
    failure does not stop the others. Returns, by dest, the URL each finished download came
    from, and the error of each that failed (fetch's message, without a hint)."""
    bar = SharedBar(len(downloads), label)
    with ThreadPoolExecutor(POOL_SIZE) as pool, http_session(POOL_SIZE) as session:
        futures = {pool.submit(fetch, d.urls, d.dest, d.what, progress=bar, session=session, **fetch_args): d.dest
                   for d in downloads}
        try:
            for future in as_completed(futures):
                bar.file_done()
        finally:  # interrupted: start nothing more (the downloads under way finish, or time out)
            for future in futures:
                future.cancel()
            bar.close()
    used, failed = {}, {}
    for future, dest in futures.items():
        try:
            used[dest] = future.result()
        except UserError as err:
            failed[dest] = str(err)
    return used, failed
