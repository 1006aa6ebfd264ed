// The dev shell of {{name}}: a component built once (`./build.sh --dev`)
// that runs the adapter script it is handed on each call, so that an edit
// needs a millisecond bundle instead of a componentize. Development only:
//   ./build.sh --dev
//   panel1 adapter run .dev/shell.wasm --script .dev/adapter.js --op info
// Servers run the real build (./build.sh -> {{name}}.wasm).
//
// The script is the adapter bundled as CommonJS by esbuild, with the WIT
// interfaces left as `require('wasi:http/types@0.2.12')` and so on; this
// shell answers those requires with its own imports. It imports every
// interface of wit/world.wit: if you add one there, add it to MODULES too.
import * as outgoingHandler from 'wasi:http/outgoing-handler@0.2.12';
import * as httpTypes from 'wasi:http/types@0.2.12';
import * as monotonicClock from 'wasi:clocks/monotonic-clock@0.2.12';
import * as secrets from 'panel1:provisioning/secrets@0.1.0';
import * as config from 'panel1:provisioning/config@0.1.0';
import * as log from 'panel1:provisioning/log@0.1.0';

// Where `panel1 adapter ... --script FILE` puts the script; hidden from the
// adapter's own config reads.
const SCRIPT = 'panel1.dev.script';

const MODULES = {
  'wasi:http/outgoing-handler@0.2.12': outgoingHandler,
  'wasi:http/types@0.2.12': httpTypes,
  'wasi:clocks/monotonic-clock@0.2.12': monotonicClock,
  'panel1:provisioning/secrets@0.1.0': secrets,
  'panel1:provisioning/config@0.1.0': {
    get: (key) => (key === SCRIPT ? undefined : config.get(key)),
    all: () => config.all().filter(([key]) => key !== SCRIPT),
  },
  'panel1:provisioning/log@0.1.0': log,
};

function requireInterface(name) {
  const m = MODULES[name];
  if (!m) {
    throw new Error(`dev shell: the script imports ${name}, which dev-shell.js does not provide; ` +
      'add it to wit/world.wit and MODULES, then ./build.sh --dev');
  }
  return m;
}

let script;

// Also logged: `info` has no error type, so a throw there is a bare trap,
// and `panel1 adapter check` shows the captured log.
function failure(message) {
  log.write('error', message, []);
  return { tag: 'permanent', val: message };
}

// Each call runs in a fresh instance, so this evaluates the script once per call.
function adapterScript() {
  if (script) return script;
  const source = config.get(SCRIPT);
  if (source === undefined) {
    throw failure('dev shell: no script; run it with --script .dev/adapter.js (./build.sh --dev writes it)');
  }
  const module = { exports: {} };
  try {
    new Function('require', 'module', 'exports', source)(requireInterface, module, module.exports);
  } catch (e) {
    throw failure(`dev shell: the script failed to load: ${e}`);
  }
  if (!module.exports.adapter) {
    throw failure('dev shell: the script exports no `adapter`');
  }
  script = module.exports.adapter;
  return script;
}

// The functions of panel1:provisioning/adapter@0.1.0.
const FUNCTIONS = ['info', 'testConnection', 'provision', 'suspend', 'unsuspend', 'terminate',
  'status', 'changePackage', 'changePassword', 'listServices', 'usage', 'loginUrl'];

export const adapter = {};
for (const name of FUNCTIONS) {
  adapter[name] = (...args) => {
    const f = adapterScript()[name];
    if (!f) throw { tag: 'unsupported', val: `${name} is not implemented` };
    return f(...args);
  };
}
