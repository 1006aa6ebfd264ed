// The like-for-like peer's job: the Rust reference adapter's `info`, run as
// a component in Node. `queue.rs` transpiles adapters/dist/reference.wasm
// with jco (`--instantiation sync --no-wasi-shim`) into gen/reference at
// bench time; this file gives it its imports and instantiates it.
//
// The imports are stand-ins: `info` calls none of the host's interfaces, so
// the clock and an empty environment are real and everything else throws,
// which would show at once if the call ever reached them.
const { readFileSync } = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");

const absent = (name) => () => {
  throw new Error(`${name} is not available to the peer bench's adapter`);
};
// A resource type no call creates.
const resource = (name) =>
  class {
    constructor() {
      absent(name)();
    }
  };
const resources = (names) => Object.fromEntries(names.map((n) => [n, resource(n)]));

const imports = {
  "panel1:provisioning/types": {},
  "panel1:provisioning/config": { get: absent("config.get") },
  "panel1:provisioning/log": { write: absent("log.write") },
  "panel1:provisioning/secrets": { placeholder: absent("secrets.placeholder") },
  "wasi:clocks/monotonic-clock": {
    now: () => process.hrtime.bigint(),
    resolution: () => 1n,
    subscribeDuration: absent("subscribe-duration"),
    subscribeInstant: absent("subscribe-instant"),
  },
  "wasi:cli/environment": { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
  "wasi:cli/exit": { exit: absent("exit") },
  "wasi:cli/stdin": { getStdin: absent("stdin") },
  "wasi:cli/stdout": { getStdout: absent("stdout") },
  "wasi:cli/stderr": { getStderr: absent("stderr") },
  "wasi:cli/terminal-input": resources(["TerminalInput"]),
  "wasi:cli/terminal-output": resources(["TerminalOutput"]),
  "wasi:cli/terminal-stdin": { getTerminalStdin: () => undefined },
  "wasi:cli/terminal-stdout": { getTerminalStdout: () => undefined },
  "wasi:cli/terminal-stderr": { getTerminalStderr: () => undefined },
  "wasi:http/outgoing-handler": { handle: absent("http") },
  "wasi:http/types": resources([
    "Fields",
    "FutureIncomingResponse",
    "IncomingBody",
    "IncomingResponse",
    "OutgoingBody",
    "OutgoingRequest",
    "RequestOptions",
  ]),
  "wasi:io/error": resources(["Error"]),
  "wasi:io/poll": resources(["Pollable"]),
  "wasi:io/streams": resources(["InputStream", "OutputStream"]),
};

// The transpiled adapter: its core modules compiled once; `fresh()` makes a
// new instance (own memory), as Panel1 makes a new store for every call.
async function load(dir) {
  const { instantiate } = await import(pathToFileURL(path.join(dir, "reference.js")).href);
  const modules = new Map();
  const core = (name) => {
    if (!modules.has(name)) modules.set(name, new WebAssembly.Module(readFileSync(path.join(dir, name))));
    return modules.get(name);
  };
  return { fresh: () => instantiate(core, imports).adapter };
}

module.exports = { load };
