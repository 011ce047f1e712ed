/**
 * Issue #8, HTTP and socket security on the real server (API + socket.io, no Next here; the
 * pages' nonce CSP is checked in security-pages.test.ts): headers on every response, the CORS
 * allow-list on /api and on the socket handshake, no path traversal through any file route,
 * and neither the LLM key nor a server path in anything a client receives.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { makeRedactor, originAllowed, pageCsp } from '../../server/security';
import { REPO_ROOT } from '../helpers/fixtures';
import { solidPng } from '../helpers/hostile-images';

const SECRET_KEY = 'sk-test-0123456789abcdefSECRET';
const HF_SECRET = 'hf_secretTOKEN0987654321';
const ALLOWED = 'https://studio.example.org';

/** A raw request: the path goes out exactly as written (fetch would normalise `..`). */
function raw(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('latin1') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('security of the API and sockets', () => {
  let studio: StudioServer;
  let port: number;
  let dataDir: string;
  let itemId: string;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-security-'));
    studio = await createStudioServer({
      config: loadConfig({
        NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu', CLIP_STUDIO_CORS_ORIGINS: ALLOWED,
        OPENAI_API_KEY: SECRET_KEY, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', CAPTION_LLM_MODEL: 'm', HF_TOKEN: HF_SECRET,
      }),
      next: false,
    });
    port = (await studio.listen(0, '127.0.0.1')).port;
    // One real gallery item, and files a traversal would like to reach.
    const gallery = (studio as unknown as { queue: unknown }) && join(dataDir, 'gallery');
    mkdirSync(gallery, { recursive: true });
    writeFileSync(join(dataDir, 'secret.png'), 'TOP-SECRET-FILE');
    writeFileSync(join(dataDir, 'gallery', 'secret.png'), 'TOP-SECRET-FILE');
    const up = await raw(port, 'POST', '/api/uploads?field=initImage&name=ok.png', { 'content-type': 'application/octet-stream' }, solidPng(16, 16));
    assert.equal(up.status, 201, up.body);
    itemId = (JSON.parse(up.body) as { id: string }).id;
  });
  after(async () => {
    await studio?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('every API response carries the security headers, errors included', async () => {
    for (const [method, path] of [['GET', '/api/health'], ['GET', '/api/gallery'], ['GET', '/api/nope'], ['GET', '/api/images/x.png'], ['PUT', '/api/gallery'], ['GET', '/api/jobs'], ['GET', '/api/metrics'], ['GET', '/not-api']] as const) {
      const r = await raw(port, method, path);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
      assert.equal(r.headers['referrer-policy'], 'no-referrer', path);
      assert.equal(r.headers['x-frame-options'], 'DENY', path);
      assert.match(String(r.headers['content-security-policy']), /default-src 'none'.*frame-ancestors 'none'/, path);
    }
    const poll = await raw(port, 'GET', '/socket.io/?EIO=4&transport=polling');
    assert.equal(poll.status, 200);
    assert.equal(poll.headers['x-content-type-options'], 'nosniff', 'socket.io polling responses too');
  });

  it('CORS: other origins are refused on /api unless allow-listed; the studio\'s own origin works', async () => {
    const evil = { origin: 'https://evil.example' };
    assert.equal((await raw(port, 'GET', '/api/gallery', evil)).status, 403);
    assert.equal((await raw(port, 'DELETE', `/api/gallery/${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}`, evil)).status, 403);
    assert.equal((await raw(port, 'POST', '/api/uploads?field=initImage', evil, solidPng(4, 4))).status, 403, 'no cross-site uploads');
    assert.equal((await raw(port, 'OPTIONS', '/api/uploads', { ...evil, 'access-control-request-method': 'POST' })).status, 403);
    assert.equal((await raw(port, 'GET', '/api/gallery', { origin: 'null' })).status, 403, 'sandboxed frames and file:// are foreign');
    const pre = await raw(port, 'OPTIONS', '/api/uploads', { origin: ALLOWED, 'access-control-request-method': 'POST' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], ALLOWED);
    const allowed = await raw(port, 'GET', '/api/gallery', { origin: ALLOWED });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], ALLOWED);
    const self = await raw(port, 'GET', '/api/gallery', { origin: `http://127.0.0.1:${port}` });
    assert.equal(self.status, 200);
    assert.equal(self.headers['access-control-allow-origin'], `http://127.0.0.1:${port}`);
    const none = await raw(port, 'GET', '/api/gallery');
    assert.equal(none.status, 200, 'no Origin: curl, the CLI');
    assert.equal(none.headers['access-control-allow-origin'], undefined);
  });

  it('CORS: a WebSocket from another origin is refused at the handshake', async () => {
    const attempt = (origin?: string) => new Promise<'connected' | 'refused'>((resolve) => {
      const c: Socket = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true, reconnection: false, ...(origin ? { extraHeaders: { origin } } : {}) });
      c.once('connect', () => { c.close(); resolve('connected'); });
      c.once('connect_error', () => { c.close(); resolve('refused'); });
    });
    assert.equal(await attempt('https://evil.example'), 'refused');
    assert.equal(await attempt(ALLOWED), 'connected');
    assert.equal(await attempt(`http://127.0.0.1:${port}`), 'connected');
    assert.equal(await attempt(undefined), 'connected');
  });

  it('no file route can be walked out of its directory', async () => {
    const id = itemId; // an upload id: a valid UUID that is not a gallery item
    const attempts = [
      '/api/images/../secret.png', '/api/images/..%2fsecret.png', '/api/images/..%2F..%2Fpackage.json', '/api/images/%2e%2e%2fsecret.png',
      '/api/images/%2e%2e/%2e%2e/package.json', '/api/images/....//secret.png', '/api/images/..\\secret.png', '/api/images/..%5csecret.png',
      '/api/images//etc/passwd', '/api/images/%2fetc%2fpasswd', `/api/images/${id}.png%00.txt`, `/api/images/${id}.png/..`, '/api/images/secret.png',
      `/api/images/${id}.png`, '/api/images/%E0%A4%A.png', '/api/gallery/..%2f..%2fetc%2fpasswd', '/api/gallery/%E0%A4%A', '/api/gallery/../../studio.db',
      '/api/gallery/..', '/api/uploads/../studio.db', `/api/uploads/${id}.png`, '/api/../secret.png', '/api/%2e%2e/secret.png',
    ];
    for (const path of attempts) {
      const r = await raw(port, 'GET', path);
      assert.ok([400, 404, 405].includes(r.status), `${path}: ${r.status}`);
      assert.ok(!r.body.includes('TOP-SECRET') && !r.body.includes('SQLite format') && !r.body.includes('root:x:') && !r.body.includes('"name": "clip-studio"'), `${path} leaked a file`);
      assert.match(String(r.headers['content-type']), /application\/json/, `${path}: a JSON error, not a file`);
    }
  });

  it('neither the LLM key, the HF token nor a server path reaches a client', async () => {
    const paths = ['/api/health', '/api/health?fresh', '/api/generate/info', '/api/gallery', '/api/jobs', '/api/metrics', '/api/nope', '/api/uploads?field=initImage'];
    const bodies: string[] = [];
    for (const path of paths) bodies.push((await raw(port, path.startsWith('/api/uploads') ? 'POST' : 'GET', path, {}, path.startsWith('/api/uploads') ? Buffer.from('not an image') : undefined)).body);
    const c: Socket = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true });
    try {
      const report = new Promise<unknown>((r) => c.once('health:report', r));
      c.emit('health:get');
      bodies.push(JSON.stringify(await report));
    } finally {
      c.close();
    }
    const health = JSON.parse(bodies[0]!) as { data: { dir: string } };
    assert.equal(health.data.dir, '$CLIP_STUDIO_DATA', 'the data directory is named, not shown');
    for (const [i, body] of bodies.entries()) {
      const where = paths[i] ?? 'socket health:report';
      assert.ok(!body.includes(SECRET_KEY), `${where} leaks the LLM key`);
      assert.ok(!body.includes(HF_SECRET), `${where} leaks the HF token`);
      assert.ok(!body.includes(dataDir), `${where} leaks the data directory`);
      assert.ok(!body.includes(REPO_ROOT), `${where} leaks the install path`);
    }
  });
});

describe('security helpers', () => {
  it('pageCsp: a nonce for scripts, the socket allowed over ws/wss to the same host, no framing', () => {
    const csp = pageCsp('abc123==', { dev: false, host: 'studio.example.org:3000' });
    assert.match(csp, /script-src 'self' 'nonce-abc123==' 'strict-dynamic';/);
    assert.match(csp, /connect-src 'self' ws:\/\/studio\.example\.org:3000 wss:\/\/studio\.example\.org:3000;/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /object-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-eval/);
    assert.match(pageCsp('n', { dev: true }), /'unsafe-eval'/, 'dev tooling needs eval');
    assert.match(pageCsp('n', { dev: false, host: 'evil.com; script-src *' }), /connect-src 'self';/, 'a hostile Host header is not echoed');
  });

  it('originAllowed: same host, the allow-list, or no Origin; nothing else', () => {
    assert.equal(originAllowed(undefined, 'a:1', []), true);
    assert.equal(originAllowed('http://a:1', 'a:1', []), true);
    assert.equal(originAllowed('http://a:2', 'a:1', []), false);
    assert.equal(originAllowed('https://b.org', 'a:1', ['https://b.org']), true);
    assert.equal(originAllowed('HTTPS://B.ORG', 'a:1', ['https://b.org']), true);
    assert.equal(originAllowed('null', 'a:1', []), false);
    assert.equal(originAllowed('javascript:alert(1)', 'a:1', []), false);
  });

  it('the new settings are validated once, naming the variable', () => {
    const base = { CLIP_STUDIO_DATA: '/tmp/x' };
    const c = loadConfig({ ...base, CLIP_STUDIO_CORS_ORIGINS: 'https://A.example, http://localhost:3000', CLIP_STUDIO_TRUST_PROXY: '1', CLIP_STUDIO_SHUTDOWN_MS: '2500' });
    assert.deepEqual(c.corsOrigins, ['https://a.example', 'http://localhost:3000']);
    assert.equal(c.trustProxy, true);
    assert.equal(c.shutdownMs, 2500);
    assert.deepEqual(loadConfig(base).corsOrigins, []);
    assert.equal(loadConfig(base).shutdownMs, 10_000);
    assert.throws(() => loadConfig({ ...base, CLIP_STUDIO_CORS_ORIGINS: 'https://a.example/path' }), /^ConfigError: CLIP_STUDIO_CORS_ORIGINS must be a comma-separated list of origins/);
    assert.throws(() => loadConfig({ ...base, CLIP_STUDIO_CORS_ORIGINS: '*' }), /CLIP_STUDIO_CORS_ORIGINS/, 'no wildcard');
    assert.throws(() => loadConfig({ ...base, CLIP_STUDIO_TRUST_PROXY: 'yes' }), /CLIP_STUDIO_TRUST_PROXY must be 0 or 1/);
    assert.throws(() => loadConfig({ ...base, CLIP_STUDIO_SHUTDOWN_MS: '-1' }), /CLIP_STUDIO_SHUTDOWN_MS/);
  });

  it('the redactor replaces paths (longest first) and secrets anywhere in a value, keys included', () => {
    const redact = makeRedactor({ dataDir: '/srv/data', modelsDir: '/srv/data/models', llm: { apiKey: 'sk-XYZW', baseUrl: undefined, model: undefined }, hf: { endpoint: '', token: undefined } });
    const out = redact({ a: ['/srv/data/models/x', { '/srv/data/k': 'key sk-XYZW here' }], n: 3, z: null });
    assert.deepEqual(out, { a: ['$CLIP_STUDIO_MODELS/x', { '$CLIP_STUDIO_DATA/k': 'key [redacted] here' }], n: 3, z: null });
  });
});
