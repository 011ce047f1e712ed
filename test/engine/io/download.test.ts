import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadFile, hfResolveUrl, type DownloadProgress } from '../../../engine/io/download';
import { ChecksumError, DownloadError } from '../../../engine/errors';
import { fixtureDirs } from '../../helpers/fixtures';
import { startFileServer, type FileServer } from '../../helpers/file-server';

const body = readFileSync(join(fixtureDirs()[0]!, 'clip.safetensors'));
const sha = createHash('sha256').update(body).digest('hex');
let server: FileServer;
let dir: string;

before(async () => {
  const corrupt = Buffer.from(body);
  corrupt[corrupt.length >> 1] ^= 0xff;
  server = await startFileServer({
    '/clip.safetensors': { body },
    '/etag/clip.safetensors': { body, etag: sha },
    '/cut/clip.safetensors': { body, cutFirst: 1 },
    '/corrupt/clip.safetensors': { body: corrupt },
    '/corrupt-etag/clip.safetensors': { body: corrupt, etag: sha },
    '/full/clip.safetensors': { body, ignoreRange: true },
  });
  dir = mkdtempSync(join(tmpdir(), 'clip-studio-dl-'));
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a full download with a pinned sha256 lands at dest, byte-identical, with no .part left', async () => {
  const dest = join(dir, 'pinned', 'model.safetensors');
  const seen: DownloadProgress[] = [];
  const r = await downloadFile({ url: `${server.url}/clip.safetensors`, dest, expectedSha256: sha, onProgress: (p) => seen.push(p) });
  assert.equal(r.sha256, sha);
  assert.equal(r.checksumSource, 'pinned');
  assert.equal(r.size, body.length);
  assert.ok(readFileSync(dest).equals(body));
  assert.equal(existsSync(`${dest}.part`), false);
  assert.equal(seen.at(-1)?.received, body.length);
  assert.equal(seen.at(-1)?.total, body.length);
});

test('without a pin, a 64-hex ETag is taken as the expected checksum and reported', async () => {
  const dest = join(dir, 'etag', 'model.safetensors');
  const r = await downloadFile({ url: `${server.url}/etag/clip.safetensors`, dest });
  assert.equal(r.checksumSource, 'etag');
  assert.equal(r.sha256, sha);
  await assert.rejects(
    downloadFile({ url: `${server.url}/corrupt-etag/clip.safetensors`, dest: join(dir, 'etag-bad', 'm') }),
    ChecksumError);
  assert.equal(existsSync(join(dir, 'etag-bad', 'm')), false);
});

test('the hub redirect: X-Linked-Etag on the 302 is the checksum; Authorization does not follow to another host', async () => {
  const cdn = await startFileServer({ '/blob': { body } });
  try {
    server.files.set('/org/model/resolve/main/clip.safetensors', { body, redirectTo: `${cdn.url}/blob`, linkedEtag: sha });
    const dest = join(dir, 'hub', 'model.safetensors');
    const r = await downloadFile({ url: hfResolveUrl(server.url, 'org/model', 'main', 'clip.safetensors'),
      dest, headers: { Authorization: 'Bearer secret' } });
    assert.equal(r.checksumSource, 'etag');
    assert.ok(readFileSync(dest).equals(body));
    const hub = server.requests.find((q) => q.path === '/org/model/resolve/main/clip.safetensors');
    assert.equal(hub?.headers.authorization, 'Bearer secret');
    assert.equal(cdn.requests.length, 1);
    assert.equal(cdn.requests[0]!.headers.authorization, undefined);
    // The hub's checksum is honoured even though the CDN sends no ETag: bad bytes are refused.
    const corrupt = Buffer.from(body);
    corrupt[10] ^= 1;
    cdn.files.set('/blob', { body: corrupt });
    await assert.rejects(downloadFile({ url: hfResolveUrl(server.url, 'org/model', 'main', 'clip.safetensors'),
      dest: join(dir, 'hub', 'again.safetensors') }), ChecksumError);
  } finally {
    await cdn.close();
  }
});

test('a connection cut mid-body is retried with a Range request and the file is byte-identical', async () => {
  const dest = join(dir, 'cut', 'model.safetensors');
  const before = server.requests.length;
  const r = await downloadFile({ url: `${server.url}/cut/clip.safetensors`, dest, expectedSha256: sha, retryDelayMs: 10 });
  const mine = server.requests.slice(before).filter((q) => q.path === '/cut/clip.safetensors');
  assert.equal(mine.length, 2);
  assert.equal(mine[0]!.headers.range, undefined);
  assert.match(mine[1]!.headers.range ?? '', /^bytes=[1-9]\d*-$/);
  assert.ok(r.resumedFrom > 0 && r.resumedFrom < body.length, `resumed from ${r.resumedFrom}`);
  assert.ok(readFileSync(dest).equals(body));
  assert.equal(existsSync(`${dest}.part`), false);
});

test('a .part left by an earlier run is resumed, and its bytes count in the checksum', async () => {
  const dest = join(dir, 'leftover', 'model.safetensors');
  await downloadFile({ url: `${server.url}/clip.safetensors`, dest: join(dir, 'leftover', 'x') }); // creates the dir
  writeFileSync(`${dest}.part`, body.subarray(0, 1000));
  const r = await downloadFile({ url: `${server.url}/clip.safetensors`, dest, expectedSha256: sha });
  assert.equal(r.resumedFrom, 1000);
  assert.ok(readFileSync(dest).equals(body));
  // A leftover with wrong bytes is caught by the whole-file checksum and thrown away.
  const bad = join(dir, 'leftover', 'bad.safetensors');
  writeFileSync(`${bad}.part`, Buffer.alloc(1000, 7));
  await assert.rejects(downloadFile({ url: `${server.url}/clip.safetensors`, dest: bad, expectedSha256: sha }), ChecksumError);
  assert.equal(existsSync(`${bad}.part`), false);
});

test('a server that ignores Range (200) restarts the file from zero', async () => {
  const dest = join(dir, 'full', 'model.safetensors');
  await downloadFile({ url: `${server.url}/clip.safetensors`, dest: join(dir, 'full', 'x') });
  writeFileSync(`${dest}.part`, Buffer.alloc(5000, 1));
  const r = await downloadFile({ url: `${server.url}/full/clip.safetensors`, dest, expectedSha256: sha });
  assert.equal(r.resumedFrom, 0);
  assert.ok(readFileSync(dest).equals(body));
});

test('a complete .part answered with 416 is verified and installed without a new body', async () => {
  const dest = join(dir, 'done', 'model.safetensors');
  await downloadFile({ url: `${server.url}/clip.safetensors`, dest: join(dir, 'done', 'x') });
  writeFileSync(`${dest}.part`, body);
  const r = await downloadFile({ url: `${server.url}/clip.safetensors`, dest, expectedSha256: sha });
  assert.equal(r.resumedFrom, body.length);
  assert.ok(readFileSync(dest).equals(body));
});

test('corrupted bytes are rejected by the checksum: nothing installed, no .part left', async () => {
  const dest = join(dir, 'corrupt', 'model.safetensors');
  await assert.rejects(
    downloadFile({ url: `${server.url}/corrupt/clip.safetensors`, dest, expectedSha256: sha }),
    (err: unknown) => err instanceof ChecksumError && err.message.includes(sha) && err.message.includes('/corrupt/clip.safetensors'));
  assert.equal(existsSync(dest), false);
  assert.equal(existsSync(`${dest}.part`), false);
});

test('a 404 is a DownloadError naming the URL and the status, not retried', async () => {
  const url = `${server.url}/nope/model.safetensors`;
  const before = server.requests.length;
  await assert.rejects(downloadFile({ url, dest: join(dir, 'nope', 'm') }),
    (err: unknown) => err instanceof DownloadError && err.status === 404 && err.message.includes(url) && err.message.includes('404'));
  assert.equal(server.requests.length - before, 1);
});

test('a refused connection is retried, then reported with the URL and the kept .part', async () => {
  const url = 'http://127.0.0.1:9/model.safetensors'; // discard port: nothing listens
  await assert.rejects(downloadFile({ url, dest: join(dir, 'refused', 'm'), retries: 1, retryDelayMs: 5 }),
    (err: unknown) => err instanceof DownloadError && err.message.includes(url) && /after 2 tries/.test(err.message));
});

test('options are validated, naming the option', async () => {
  await assert.rejects(downloadFile({ url: server.url, dest: join(dir, 'v'), retries: -1 }), /`retries` option/);
  await assert.rejects(downloadFile({ url: server.url, dest: join(dir, 'v'), expectedSha256: 'abc' }), /`expectedSha256`/);
});

test('hfResolveUrl builds the hub URL from endpoint, repo, revision and path', () => {
  assert.equal(hfResolveUrl('https://hf.example/', 'openai/clip-vit-base-patch32', 'b33cedf', 'sub/config.json'),
    'https://hf.example/openai/clip-vit-base-patch32/resolve/b33cedf/sub/config.json');
});
