// Writes types/: TypeScript declarations of wit/world.wit (the `adapter`
// world) as componentize-js sees it, with the pinned jco's generator (the
// same as `jco guest-types wit --world-name adapter -o types`).
// jco 1.35's command cannot read wit/ itself: its WASI shim
// (preview2-shim 0.26) opens no directory unless told, so this script opens
// the project directory, and only it, for the generator.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { dirname, join, relative } from 'node:path';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

const project = process.cwd();
const req = createRequire(join(project, 'package.json'));
const transpile = req.resolve('@bytecodealliance/jco-transpile');
// The shim instance the generator uses (resolved from its own package).
const shim = createRequire(transpile).resolve('@bytecodealliance/preview2-shim/filesystem');
const { _setPreopens } = await import(pathToFileURL(shim).href);
_setPreopens({ [project]: project });
const { generateGuestTypes } = await import(pathToFileURL(transpile).href);

const out = join(project, 'types');
const files = await generateGuestTypes(join(project, 'wit'), { worldName: 'adapter', outDir: `${out}/` });
rmSync(out, { recursive: true, force: true });
for (const [path, text] of Object.entries(files)) {
  if (relative(out, path).startsWith('..')) throw new Error(`unexpected output path ${path}`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}
console.log(`types/: ${Object.keys(files).length} files from wit/`);
