#!/usr/bin/env node
// `npm start`: build the Next.js app if it has not been built or its sources changed since, then
// run the studio server in production mode (tsx server.ts). Extra arguments go to server.ts.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = new URL('..', import.meta.url).pathname;
const buildId = join(root, '.next', 'BUILD_ID');

/** Newest modification time under the paths that go into the Next build. */
function newestSource() {
  let newest = 0;
  const visit = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(join(p, name));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['app', 'public', 'server/protocol.ts', 'next.config.js', 'package.json', 'tsconfig.json', 'tsconfig.next.json']) visit(join(root, p));
  return newest;
}

/** Why the production build must be (re)made, or null when it is current. */
export function staleReason() {
  if (!existsSync(buildId)) return 'no production build yet (.next/BUILD_ID is missing)';
  if (newestSource() > statSync(buildId).mtimeMs) return 'app/ sources changed since the last build';
  return null;
}

/** Build the Next.js app if it is missing or stale; exits the process if the build fails. */
export function buildIfStale({ log = console.log } = {}) {
  const why = staleReason();
  if (!why) return false;
  log(`clip-studio: ${why}; running \`next build\` first (a minute or two)…`);
  const nextBin = join(root, 'node_modules', 'next', 'dist', 'bin', 'next');
  const build = spawnSync(process.execPath, [nextBin, 'build'], { cwd: root, stdio: 'inherit', env: { ...process.env, NODE_ENV: 'production' } });
  if (build.status !== 0) throw new Error(`\`next build\` failed with exit code ${build.status}; see the output above.`);
  return true;
}

function main() {
  try {
    buildIfStale();
  } catch (err) {
    console.error(`clip-studio: ${err.message}`);
    process.exit(1);
  }
  const tsxCli = join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
  const server = spawn(process.execPath, [tsxCli, join(root, 'server.ts'), ...process.argv.slice(2)], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.kill(sig));
  server.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
