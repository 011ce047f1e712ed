/**
 * The studio in a real browser: the production server (Next build + API + socket.io + engine
 * workers) in a child process, Debian's chromium driven by playwright-core. Builds the app first
 * when .next is missing or older than app/ (the same check `npm start` makes).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { browserBinary, launchChromium } from '../helpers/browser';
import type { HealthReport } from '../../server/protocol';
import { buildIfStale } from '../../scripts/start.mjs';
import { REPO_ROOT } from '../helpers/fixtures';


/** Start `tsx server.ts` on a free port; resolves with its URL once it says it is listening. */
function startServer(dataDir: string): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production', PORT: '0', HOST: '127.0.0.1', CLIP_STUDIO_DATA: dataDir, NEXT_TELEMETRY_DISABLED: '1' };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [join(REPO_ROOT, 'node_modules/tsx/dist/cli.mjs'), join(REPO_ROOT, 'server.ts')], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${out}`)), 60_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /on (http:\/\/\S+:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, log: () => out });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
}

describe('studio in a browser', { skip: browserBinary.skip }, () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Browser;
  let dataDir: string;

  before(async () => {
    buildIfStale({ log: (m: string) => console.log(`# ${m}`) });
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-e2e-'));
    server = await startServer(dataDir);
    browser = await launchChromium();
  }, { timeout: 400_000 });

  after(async () => {
    await browser?.close();
    if (server) {
      const exited = new Promise((r) => server.child.once('exit', r));
      server.child.kill('SIGTERM');
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('shows the measured health and a live socket connection, and runs an engine job', { timeout: 120_000 }, async () => {
    const health = (await (await fetch(`${server.url}/api/health`)).json()) as HealthReport;
    const backend = health.engine.tfjs?.backend?.name;
    assert.ok(backend, `the server reports a backend: ${JSON.stringify(health.engine)}`);

    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(server.url);
    await page.getByRole('heading', { name: 'Studio' }).waitFor();

    // socket.io round trip: "connected to CLIP Studio <version>" appears only after the server's hello.
    await page.getByTestId('socket-status').filter({ hasText: `connected to CLIP Studio ${health.version}` }).waitFor({ timeout: 30_000 });
    await page.getByTestId('backend').filter({ hasText: backend }).waitFor({ timeout: 30_000 });
    const models = await page.getByTestId('models').textContent();
    // A fresh data directory: the page must say so rather than invent a model.
    assert.match(models ?? '', /no models installed|demo/);

    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByTestId('selftest').filter({ hasText: `Done: 40 steps on ${backend}` }).waitFor({ timeout: 60_000 });
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it('the Caption and Play pages render their own tools, not placeholders', async () => {
    const page = await browser.newPage();
    for (const [path, heading] of [['/caption', 'Caption'], ['/play', 'Play']] as const) {
      await page.goto(`${server.url}${path}`);
      await page.getByRole('heading', { level: 1, name: heading }).waitFor({ timeout: 30_000 });
      assert.doesNotMatch((await page.locator('main').textContent()) ?? '', /Coming soon|not built yet/i);
    }
    await page.close();
  });
});
