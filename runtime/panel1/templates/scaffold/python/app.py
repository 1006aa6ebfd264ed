"""{{name}}: a Panel1 provisioning adapter in Python (componentize-py).

A small but real starter for WHM API 1 (cPanel's server API), the provider
`panel1 sim whm` simulates. Every call is
  GET https://{host}:{port}/json-api/<function>?api.version=1&...
with `Authorization: whm <user>:<whm-token>`; the token is a secret
placeholder the host fills in, so its value never enters this component.

Errors are raised as `Err(AdapterError_...)` (the helpers in panel1_http
build them). Change the provider: replace `Whm` and the operations below;
keep status_error/transport_error and the Deadline-based request timeout.
"""
import json
import re
from urllib.parse import quote

from wit_world import exports
from wit_world.imports.panel1_provisioning_types import (
    AdapterInfo, ConnectionInfo, Operation, RemoteState, ServiceStatus,
)
from panel1_http import (
    Deadline, HttpError, config, conflict, guarded, invalid_input, log, not_found,
    permanent, placeholder, request, status_error, transient, transport_error, unsupported,
)

TOKEN = "whm-token"

SCHEMA = json.dumps({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["host"],
    "properties": {
        "host": {"type": "string", "minLength": 1, "description": "WHM host name or IP, without scheme or port"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 2087},
        "whm_user": {"type": "string", "minLength": 1, "default": "root"},
        "request_timeout_ms": {"type": "integer", "minimum": 100, "default": 30000,
                               "description": "Timeout of one WHM call (kept below the call's deadline)"},
    },
    "additionalProperties": False,
})


class Whm:
    """The server's settings and the call's clock, for one operation."""

    def __init__(self, ctx):
        host = config("host")
        if not host or not re.fullmatch(r"[A-Za-z0-9_.-]+", host):
            raise invalid_input("config `host` must be a host name or IP address")
        port = config("port") or "2087"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise invalid_input("config `port` is not a TCP port")
        timeout = config("request_timeout_ms") or "30000"
        if not timeout.isdigit() or int(timeout) == 0:
            raise invalid_input("config `request_timeout_ms` is not a positive integer")
        self.base = f"https://{host}:{port}/json-api/"
        self.user = config("whm_user") or "root"
        self.timeout_ms = int(timeout)
        self.deadline = Deadline(ctx)

    def call(self, fn: str, **params):
        """One WHM API 1 call: (True, document) or (False, reason)."""
        timeout = self.deadline.request_timeout(self.timeout_ms)
        if timeout is None:
            raise transient(f"WHM {fn}: no time left in the call")
        query = "".join(f"&{k}={quote(v, safe='')}" for k, v in params.items())
        headers = {"authorization": f"whm {self.user}:{placeholder(TOKEN)}", "accept": "application/json"}
        try:
            resp = request("GET", f"{self.base}{fn}?api.version=1{query}", headers, timeout_ms=timeout)
        except HttpError as e:
            raise transport_error(f"WHM {fn}", e, f"the egress rules must allow {self.base} and `{TOKEN}` must be bound to its host")
        log("info", "whm call", function=fn, status=resp.status)
        if not resp.ok:
            raise status_error(resp, f"WHM {fn}")
        doc = resp.json()
        result = str((doc.get("metadata") or {}).get("result")) if isinstance(doc, dict) else ""
        if result == "1":
            return True, doc
        if result == "0":
            return False, str(doc["metadata"].get("reason") or "no reason")
        raise permanent(f"WHM {fn}: not a WHM API 1 answer")

    def account(self, user: str):
        """RemoteState.ACTIVE / SUSPENDED, or None when WHM has no such account."""
        ok, answer = self.call("accountsummary", user=user)
        if ok:
            acct = ((answer.get("data") or {}).get("acct") or [{}])[0]
            return RemoteState.SUSPENDED if str(acct.get("suspended")) == "1" else RemoteState.ACTIVE
        if "does not exist" in answer.lower():
            return None
        raise permanent(f"WHM accountsummary: {answer}")


def user_of(service) -> str:
    user = service.remote_id or service.username
    if not user:
        raise invalid_input("the service has neither a remote id nor a username")
    return user


def status_of(user: str, state: RemoteState) -> ServiceStatus:
    return ServiceStatus(user, state, None, None, [])


def ensure(req, fn: str, want: RemoteState) -> ServiceStatus:
    """suspend/unsuspend as an "ensure": nothing to do when already there."""
    w = Whm(req.ctx)
    user = user_of(req.service)
    state = w.account(user)
    if state is None:
        raise not_found(f"WHM has no account `{user}`")
    if state != want:
        ok, reason = w.call(fn, user=user, reason=req.reason or "Panel1")
        if not ok:
            raise permanent(f"WHM {fn}: {reason}")
    return status_of(user, want)


def _test_connection(req) -> ConnectionInfo:
    ok, answer = Whm(req.ctx).call("version")
    if not ok:
        raise permanent(f"WHM version: {answer}")
    return ConnectionInfo(f"WHM {(answer.get('data') or {}).get('version', '?')}", [])


def _provision(req) -> ServiceStatus:
    w = Whm(req.ctx)
    s = req.service
    if not s.username:
        raise invalid_input("username is required")
    # Ensure semantics: a retry (or a lost answer) finds the account the
    # first attempt created.
    existing = w.account(s.username)
    if existing is not None:
        return status_of(s.username, existing)
    params = {"username": s.username}
    for key, value in (("domain", s.domain), ("plan", s.plan), ("contactemail", s.contact_email)):
        if value:
            params[key] = value
    ok, answer = w.call("createacct", **params)
    if ok:
        log("info", "account created", username=s.username)
        return status_of(s.username, RemoteState.ACTIVE)
    if "already exists" in answer.lower():
        state = w.account(s.username)
        if state is not None:
            return status_of(s.username, state)
        raise conflict(f"WHM createacct: {answer}")
    raise invalid_input(f"WHM createacct: {answer}")


def _terminate(req) -> ServiceStatus:
    user = user_of(req.service)
    ok, answer = Whm(req.ctx).call("removeacct", username=user)
    # Already gone is success: terminate is an "ensure".
    if ok or "does not exist" in answer.lower():
        return status_of(user, RemoteState.TERMINATED)
    raise permanent(f"WHM removeacct: {answer}")


def _status(req) -> ServiceStatus:
    user = user_of(req.service)
    return status_of(user, Whm(req.ctx).account(user) or RemoteState.TERMINATED)


class Adapter(exports.Adapter):
    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name="{{name}}",
            version="0.1.0",
            description="{{name}}: WHM API 1 starter adapter",
            operations=[Operation.TEST_CONNECTION, Operation.PROVISION, Operation.SUSPEND,
                        Operation.UNSUSPEND, Operation.TERMINATE, Operation.STATUS],
            config_schema=SCHEMA,
            egress=["https://{host}:{port}/json-api/"],
            secrets=[TOKEN],
        )

    def test_connection(self, req):
        return guarded("test-connection", _test_connection, req)

    def provision(self, req):
        return guarded("provision", _provision, req)

    def suspend(self, req):
        return guarded("suspend", ensure, req, "suspendacct", RemoteState.SUSPENDED)

    def unsuspend(self, req):
        return guarded("unsuspend", ensure, req, "unsuspendacct", RemoteState.ACTIVE)

    def terminate(self, req):
        return guarded("terminate", _terminate, req)

    def status(self, req):
        return guarded("status", _status, req)

    def change_package(self, req):
        raise unsupported("change-package is not implemented")

    def change_password(self, req):
        raise unsupported("change-password is not implemented")

    def list_services(self, req):
        raise unsupported("list-services is not implemented")

    def usage(self, req):
        raise unsupported("usage is not implemented")

    def login_url(self, req):
        raise unsupported("login-url is not implemented")
