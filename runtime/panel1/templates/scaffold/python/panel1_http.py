"""panel1_http: the Panel1 helpers for a Python adapter (componentize-py).

HTTP goes straight through wasi:http/outgoing-handler with componentize-py's
generated bindings. (componentize-py's own `poll_loop` helper imports
`wit_world.imports.types`, which does not exist here: this world has two
`types` interfaces, `panel1:provisioning/types` and `wasi:http/types`, which
the bindings name `panel1_provisioning_types` and `wasi_http_types`.)

Every failure is typed as the Rust SDK types it:
  HTTP 400/422 -> invalid-input   401/403 -> auth-failed   404 -> not-found
  409 -> conflict   408/425/429/5xx -> transient (Retry-After as retry_after_ms)
  egress denied by the host -> permanent   timeout/reset/refused -> transient
"""
import json
from typing import Dict, Optional
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import config as _config
from wit_world.imports import log as _log
from wit_world.imports import monotonic_clock, outgoing_handler, streams
from wit_world.imports import secrets as _secrets
from wit_world.imports import wasi_http_types as http
from wit_world.imports.panel1_provisioning_types import (
    AdapterError_AuthFailed, AdapterError_Conflict, AdapterError_InvalidInput,
    AdapterError_NotFound, AdapterError_Permanent, AdapterError_Transient,
    AdapterError_Unsupported, TransientError,
)

# ---- typed errors: `raise` them from operations -----------------------------


def invalid_input(msg: str) -> Err:
    return Err(AdapterError_InvalidInput(msg))


def auth_failed(msg: str) -> Err:
    return Err(AdapterError_AuthFailed(msg))


def not_found(msg: str) -> Err:
    return Err(AdapterError_NotFound(msg))


def conflict(msg: str) -> Err:
    return Err(AdapterError_Conflict(msg))


def permanent(msg: str) -> Err:
    return Err(AdapterError_Permanent(msg))


def unsupported(msg: str) -> Err:
    return Err(AdapterError_Unsupported(msg))


def transient(msg: str, retry_after_ms: Optional[int] = None) -> Err:
    return Err(AdapterError_Transient(TransientError(msg, retry_after_ms)))


# ---- host capabilities --------------------------------------------------------


def log(level: str, message: str, **fields) -> None:
    """One structured log line (level: trace|debug|info|warn|error)."""
    _log.write(_log.Level[level.upper()], message, [(k, str(v)) for k, v in fields.items()])


def config(key: str) -> Optional[str]:
    """A server setting, or None."""
    v = _config.get(key)
    return v if v else None


def placeholder(name: str) -> str:
    """Text standing for secret `name`; the host puts the value in at send time."""
    try:
        return _secrets.placeholder(name)
    except Err as e:
        raise invalid_input(f"secret `{name}`: {e.value.value}")


# ---- the call's deadline --------------------------------------------------------


class Deadline:
    """Time left in a call, on the host's monotonic clock."""

    def __init__(self, ctx):
        self.start = monotonic_clock.now()
        self.budget_ms = ctx.deadline_ms

    def remaining_ms(self) -> int:
        elapsed = (monotonic_clock.now() - self.start) // 1_000_000
        return max(0, self.budget_ms - elapsed)

    def request_timeout(self, configured_ms: int) -> Optional[int]:
        """The next request's timeout: `configured_ms`, ended a margin before
        the deadline (a tenth, 250 ms to 2 s); None when too little is left."""
        if self.budget_ms == 0:
            return configured_ms
        left = self.remaining_ms()
        usable = left - min(2000, max(250, left // 10))
        return min(configured_ms, usable) if usable >= 100 else None


# ---- HTTP -------------------------------------------------------------------------


class HttpError(Exception):
    """No answer came. kind: denied | network | invalid-url | other."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


_NETWORK = (
    http.ErrorCode_DnsTimeout, http.ErrorCode_DnsError, http.ErrorCode_DestinationNotFound,
    http.ErrorCode_DestinationUnavailable, http.ErrorCode_DestinationIpUnroutable,
    http.ErrorCode_ConnectionRefused, http.ErrorCode_ConnectionTerminated,
    http.ErrorCode_ConnectionTimeout, http.ErrorCode_ConnectionReadTimeout,
    http.ErrorCode_ConnectionWriteTimeout, http.ErrorCode_ConnectionLimitReached,
    http.ErrorCode_HttpResponseIncomplete, http.ErrorCode_HttpResponseTimeout,
)


def _http_error(code) -> HttpError:
    name = type(code).__name__.replace("ErrorCode_", "")
    if isinstance(code, (http.ErrorCode_HttpRequestDenied, http.ErrorCode_DestinationIpProhibited)):
        return HttpError("denied", name)
    if isinstance(code, _NETWORK):
        return HttpError("network", name)
    return HttpError("other", name)


_METHODS = {
    "GET": http.Method_Get(), "HEAD": http.Method_Head(), "POST": http.Method_Post(),
    "PUT": http.Method_Put(), "DELETE": http.Method_Delete(), "PATCH": http.Method_Patch(),
    "OPTIONS": http.Method_Options(),
}


class Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def retry_after_ms(self) -> Optional[int]:
        v = self.headers.get("retry-after", "").strip()
        return int(v) * 1000 if v.isdigit() else None

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise permanent(f"expected a JSON body (HTTP {self.status}): {e}; body starts with {self.text[:100]!r}")


def request(method: str, url: str, headers: Optional[Dict[str, str]] = None,
            body: Optional[bytes] = None, timeout_ms: Optional[int] = None) -> Response:
    """Send a request and read the whole answer; raises HttpError when no
    answer came."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError("invalid-url", url)
    fields = http.Fields.from_list([(k.lower(), str(v).encode()) for k, v in (headers or {}).items()])
    req = http.OutgoingRequest(fields)
    req.set_method(_METHODS.get(method.upper()) or http.Method_Other(method))
    req.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    req.set_authority(parts.netloc)
    req.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    outgoing = req.body()
    options = None
    if timeout_ms is not None:
        ns = max(1, int(timeout_ms)) * 1_000_000
        options = http.RequestOptions()
        options.set_connect_timeout(ns)
        options.set_first_byte_timeout(ns)
        options.set_between_bytes_timeout(ns)
    try:
        future = outgoing_handler.handle(req, options)
    except Err as e:
        raise _http_error(e.value)
    # The body is written after `handle`: the host reads it as it goes out
    # (written before, a large body would block on a full pipe).
    if body:
        with outgoing.write() as stream:
            for i in range(0, len(body), 4096):  # at most 4096 bytes per call
                stream.blocking_write_and_flush(body[i:i + 4096])
    http.OutgoingBody.finish(outgoing, None)
    with future.subscribe() as pollable:
        pollable.block()
    got = future.get()
    if got is None or isinstance(got, Err):
        raise HttpError("other", "the response was already taken")
    if isinstance(got.value, Err):
        raise _http_error(got.value.value)
    response = got.value.value
    status = response.status()
    hs = {k.lower(): v.decode("latin-1") for k, v in response.headers().entries()}
    chunks = []
    incoming = response.consume()
    with incoming.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(65536))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise HttpError("network", "reading the body failed")
    return Response(status, hs, b"".join(chunks))


def status_error(resp: Response, at: str = "") -> Err:
    """The typed error for a non-2xx answer."""
    msg = f"{at + ': ' if at else ''}HTTP {resp.status}: {resp.text[:200]}"
    s = resp.status
    if s in (400, 422):
        return invalid_input(msg)
    if s in (401, 403):
        return auth_failed(msg)
    if s == 404:
        return not_found(msg)
    if s == 409:
        return conflict(msg)
    if s in (408, 425, 429) or 500 <= s <= 599:
        return transient(msg, resp.retry_after_ms)
    return permanent(msg)


def transport_error(at: str, e: HttpError, hint: str = "check the egress rules and secret bindings") -> Err:
    """The typed error for a request that got no answer."""
    if e.kind == "network":
        return transient(f"{at}: network error: {e}")
    if e.kind == "denied":
        return permanent(f"{at}: request denied by the host: {e}; {hint}")
    return permanent(f"{at}: {e.kind}: {e}")


def guarded(op: str, f, *args):
    """Run an operation; an exception that is not an adapter error (a bug)
    becomes `permanent` with an `error` log line instead of a trap."""
    try:
        return f(*args)
    except Err:
        raise
    except Exception as e:  # noqa: BLE001 - anything else is a bug
        message = f"{op}: unexpected error: {e!r}"
        try:
            log("error", message)
        except Exception:  # noqa: BLE001 - logging must not hide the error
            pass
        raise permanent(message)
