/**
 * Issue #8 on the pages (the production Next build behind the studio server; built first when
 * stale, as `npm start` does): a fresh CSP nonce per response that every script of the page
 * carries, the socket allowed by connect-src, the other security headers, no secret or server
 * path in the HTML, and no way out of the static file routes. That the pages still work under
 * this policy (socket connects, jobs run) is what the browser tests in test/e2e check.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { buildIfStale } from '../../scripts/start.mjs';
import { browserBinary, launchChromium } from '../helpers/browser';
import { REPO_ROOT } from '../helpers/fixtures';

const SECRET_KEY = 'sk-test-pages-0123456789SECRET';

function raw(port: number, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { accept: 'text/html' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('security of the pages', () => {
  let studio: StudioServer;
  let port: number;
  let dataDir: string;

  before(async () => {
    buildIfStale({ log: (m: string) => console.log(`# ${m}`) });
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-pages-'));
    studio = await createStudioServer({ config: loadConfig({ CLIP_STUDIO_DATA: dataDir, OPENAI_API_KEY: SECRET_KEY, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', CAPTION_LLM_MODEL: 'm' }), dir: REPO_ROOT });
    port = (await studio.listen(0, '127.0.0.1')).port;
  }, { timeout: 400_000 });
  after(async () => {
    await studio?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('each page response has its own nonce, on every script, and a policy that lets the socket connect', async () => {
    const nonces = new Set<string>();
    for (const path of ['/', '/', '/caption', '/play']) {
      const r = await raw(port, path);
      assert.equal(r.status, 200, path);
      const csp = String(r.headers['content-security-policy']);
      const nonce = /script-src 'self' 'nonce-([A-Za-z0-9+/=]+)' 'strict-dynamic'/.exec(csp)?.[1];
      assert.ok(nonce, `${path}: a nonce in ${csp}`);
      nonces.add(nonce);
      assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${port} wss://127\\.0\\.0\\.1:${port}`));
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-eval/, 'production needs no eval');
      const scripts = [...r.body.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
      assert.ok(scripts.length > 0, `${path} has scripts`);
      for (const s of scripts) assert.ok(s.includes(`nonce="${nonce}"`), `${path}: ${s} carries this response's nonce`);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['referrer-policy'], 'no-referrer');
      assert.equal(r.headers['x-frame-options'], 'DENY');
      assert.equal(r.headers['x-powered-by'], undefined);
      assert.ok(!r.body.includes(SECRET_KEY), `${path} leaks the LLM key`);
      assert.ok(!r.body.includes(dataDir) && !r.body.includes(REPO_ROOT), `${path} leaks a server path`);
    }
    assert.equal(nonces.size, 4, 'a fresh nonce per response');
  });

  it('in a browser, no page breaks the policy, and the socket connects under it', { skip: browserBinary.skip, timeout: 120_000 }, async () => {
    const browser = await launchChromium();
    try {
      for (const path of ['/', '/caption', '/play']) {
        const page = await browser.newPage();
        const violations: string[] = [];
        page.on('console', (m) => {
          if (/Content Security Policy|Refused to (load|execute|connect|apply)/i.test(m.text())) violations.push(m.text());
        });
        await page.addInitScript(() => {
          document.addEventListener('securitypolicyviolation', (e) => console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`));
        });
        await page.goto(`http://127.0.0.1:${port}${path}`);
        if (path === '/') await page.getByTestId('socket-status').filter({ hasText: 'connected to CLIP Studio' }).waitFor({ timeout: 30_000 });
        else await page.waitForLoadState('networkidle');
        assert.deepEqual(violations, [], `${path}: CSP violations`);
        await page.close();
      }
    } finally {
      await browser.close();
    }
  });

  it('no static route walks out of public/ or .next/static', async () => {
    const attempts = [
      '/_next/static/../../package.json', '/_next/static/..%2f..%2fpackage.json', '/_next/static/%2e%2e/%2e%2e/package.json',
      '/_next/static/..%2f..%2f..%2fserver%2fconfig.ts', '/%2e%2e/package.json', '/..%2fpackage.json', '/favicon.svg/..%2f..%2fpackage.json',
      '/public/../package.json', '/_next/image?url=%2F..%2Fpackage.json&w=64&q=75', '/_next/static/%2e%2e%5c%2e%2e%5cpackage.json', '/.env', '/.git/config',
      '/server/config.ts', '/data/studio.db',
    ];
    for (const path of attempts) {
      const r = await raw(port, path);
      assert.ok(!r.body.includes('"name": "clip-studio"') && !r.body.includes('loadConfig') && !r.body.includes('[core]') && !r.body.includes('SQLite format'), `${path} (${r.status}) served a file it must not`);
    }
    assert.equal((await raw(port, '/favicon.svg')).status, 200, 'public files are still served');
  });
});
