#!/usr/bin/env node
// Runs the test suite with Node's own test runner (TypeScript through tsx).
//   node scripts/test.mjs                 typecheck, then every test/**/*.test.ts(x)
//   node scripts/test.mjs test/reference  only the files under the given paths (no typecheck)
// test/acceptance (minutes-long checks of the demo models' pictures) and test/load (a 60 s load
// test) run only when named:
//   node scripts/test.mjs test/acceptance   (npm run test:acceptance)
//   node scripts/test.mjs test/load         (npm run test:load)
// One test file at a time: the machine has two cores and the model tests use both.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const roots = args.length ? args : ['test'];

function collect(path, out) {
  const st = statSync(path);
  if (st.isFile()) { out.push(path); return out; }
  for (const name of readdirSync(path).sort()) {
    const p = join(path, name);
    if (statSync(p).isDirectory()) { if (!((name === 'acceptance' || name === 'load') && !args.length)) collect(p, out); }
    else if (/\.test\.tsx?$/.test(name)) out.push(p);
  }
  return out;
}

if (!args.length) {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', root], { stdio: 'inherit' });
  if (tsc.status !== 0) { console.error('typecheck failed'); process.exit(tsc.status ?? 1); }
}

const files = roots.flatMap((r) => collect(join(root, r), [])).map((f) => relative(root, f));
if (!files.length) { console.error(`no test files under ${roots.join(', ')}`); process.exit(1); }
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit', cwd: root });
process.exit(run.status ?? 1);
