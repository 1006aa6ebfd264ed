"""The dev shell of {{name}}: a component built once (`./build.sh --dev`)
that runs the adapter's Python source it is handed on each call, so an edit
needs no componentize. Development only:

    ./build.sh --dev
    panel1 adapter run .dev/shell.wasm --script .dev/adapter.json --op info

Servers run the real build (./build.sh -> {{name}}.wasm).

The script is a JSON object {"modules": {"app": "<source>", ...}} holding
every .py file of the project; `app` is imported from it (and imports the
others from it), and its `Adapter` answers the calls.
"""
import importlib
import importlib.abc
import importlib.util
import json
import re  # noqa: F401  (the starter's imports, loaded with the shell)
import sys
import typing  # noqa: F401
import urllib.parse  # noqa: F401

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config as _config
from wit_world.imports import log as _log
from wit_world.imports import monotonic_clock, outgoing_handler, streams  # noqa: F401
from wit_world.imports import secrets as _secrets  # noqa: F401
from wit_world.imports import wasi_http_types  # noqa: F401
from wit_world.imports.panel1_provisioning_types import AdapterError_Permanent

# Where `panel1 adapter ... --script FILE` puts the script; hidden from the
# adapter's own config reads.
SCRIPT = "panel1.dev.script"

_get = _config.get
_all = _config.all
_config.get = lambda key: None if key == SCRIPT else _get(key)
_config.all = lambda: [(k, v) for (k, v) in _all() if k != SCRIPT]


class _Source(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the project's modules from the script instead of files."""

    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        if name in self.modules:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = self.modules[module.__name__]
        exec(compile(source, f"{module.__name__}.py", "exec"), module.__dict__)


def _failure(message):
    # `info` has no error type: a raise there is a bare trap, and
    # `panel1 adapter check` shows the captured log.
    _log.write(_log.Level.ERROR, message, [])
    return Err(AdapterError_Permanent(message))


_adapter = None


def _script():
    """The project's Adapter; each call runs in a fresh instance, so this
    loads the source once per call."""
    global _adapter
    if _adapter is not None:
        return _adapter
    text = _get(SCRIPT)
    if text is None:
        raise _failure("dev shell: no script; run it with --script .dev/adapter.json "
                       "(./build.sh --dev writes it)")
    try:
        modules = json.loads(text)["modules"]
        sys.meta_path.insert(0, _Source(modules))
        _adapter = importlib.import_module("app").Adapter()
    except Err:
        raise
    except Exception as e:
        raise _failure(f"dev shell: the script failed to load: {type(e).__name__}: {e}")
    return _adapter


class Adapter(exports.Adapter):
    def info(self):
        return _script().info()

    def test_connection(self, req):
        return _script().test_connection(req)

    def provision(self, req):
        return _script().provision(req)

    def suspend(self, req):
        return _script().suspend(req)

    def unsuspend(self, req):
        return _script().unsuspend(req)

    def terminate(self, req):
        return _script().terminate(req)

    def status(self, req):
        return _script().status(req)

    def change_package(self, req):
        return _script().change_package(req)

    def change_password(self, req):
        return _script().change_password(req)

    def list_services(self, req):
        return _script().list_services(req)

    def usage(self, req):
        return _script().usage(req)

    def login_url(self, req):
        return _script().login_url(req)
