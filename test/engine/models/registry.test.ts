import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultModel, fetchModel, listModels, parseManifest, resolveModel, verifyModel } from '../../../engine/models/registry';
import { ChecksumError, ModelLoadError } from '../../../engine/errors';
import { fixtureDirs } from '../../helpers/fixtures';
import { startFileServer, type FileServer } from '../../helpers/file-server';

const fx = fixtureDirs()[0]!;
const weights = readFileSync(join(fx, 'clip.safetensors'));
const torchWeights = readFileSync(join(fx, 'clip.pt'));
const config = readFileSync(join(fx, 'clip_config.json'));
const ckpt = readFileSync(join(fx, 'vqgan.ckpt'));
const yaml = Buffer.from('model:\n  params:\n    embed_dim: 4\n');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const REV = 'b33cedfd0df4e43b8238760678fcc89e1a0d38b3';

let server: FileServer;
let root: string;
let modelsDir: string;
let dataDir: string;

function writeManifest(m: Record<string, unknown>): void {
  mkdirSync(join(modelsDir, m.id as string), { recursive: true });
  writeFileSync(join(modelsDir, m.id as string, 'model.json'), JSON.stringify(m));
}

before(async () => {
  server = await startFileServer({
    [`/org/tiny-clip/resolve/${REV}/config.json`]: { body: config },
    [`/org/tiny-clip/resolve/${REV}/model.safetensors`]: { body: weights },
    [`/org/alt-clip/resolve/${REV}/config.json`]: { body: config },
    [`/org/alt-clip/resolve/${REV}/pytorch_model.bin`]: { body: torchWeights, etag: sha(torchWeights) },
    '/vq/last.ckpt': { body: ckpt },
    '/vq/model.yaml': { body: yaml },
  });
  root = mkdtempSync(join(tmpdir(), 'clip-studio-registry-'));
  modelsDir = join(root, 'models');
  dataDir = join(root, 'data');
  const hf = (repo: string) => ({ kind: 'huggingface', repo, revision: REV });
  writeManifest({ id: 'tiny-clip', family: 'clip', title: 'Tiny CLIP', preference: 1, source: hf('org/tiny-clip'), license: 'MIT',
    files: [
      { path: 'config.json', required: true, sha256: sha(config) },
      { path: 'model.safetensors', required: true, sha256: sha(weights), size: weights.length },
      { path: 'pytorch_model.bin', required: false, alternativeTo: 'model.safetensors' },
    ] });
  writeManifest({ id: 'alt-clip', family: 'clip', title: 'CLIP with only a .bin', preference: 2, source: hf('org/alt-clip'), license: 'MIT',
    files: [
      { path: 'config.json', required: true },
      { path: 'model.safetensors', required: true },
      { path: 'pytorch_model.bin', required: false, alternativeTo: 'model.safetensors' },
    ] });
  writeManifest({ id: 'tiny-vqgan', family: 'vqgan', title: 'Tiny VQGAN', source: { kind: 'url' }, license: 'MIT',
    files: [
      { path: 'last.ckpt', required: true, url: `${server.url}/gone/last.ckpt`, mirrors: [`${server.url}/vq/last.ckpt`] },
      { path: 'model.yaml', required: true, url: `${server.url}/vq/model.yaml` },
    ] });
  writeManifest({ id: 'demo-clip', family: 'clip', title: 'Demo CLIP', bundled: true, license: 'MIT',
    files: [{ path: 'model.safetensors', required: true, sha256: sha(weights) }] });
  writeFileSync(join(modelsDir, 'demo-clip', 'model.safetensors'), weights);
  mkdirSync(join(modelsDir, 'clip-bpe')); // data that is not a model: skipped
});
after(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

const opts = () => ({ modelsDir, dataDir, hfEndpoint: server.url, retryDelayMs: 5 });

test('listModels reads every manifest: fetched models missing, the bundled demo installed in the repo dir', () => {
  const all = listModels(opts());
  assert.deepEqual(all.map((m) => `${m.id}:${m.status}`).sort(),
    ['alt-clip:missing', 'demo-clip:installed', 'tiny-clip:missing', 'tiny-vqgan:missing']);
  assert.equal(all.find((m) => m.id === 'demo-clip')!.dir, join(modelsDir, 'demo-clip'));
  assert.equal(all.find((m) => m.id === 'tiny-clip')!.dir, join(dataDir, 'models', 'tiny-clip'));
  assert.equal(all.find((m) => m.id === 'tiny-clip')!.expectedSize, weights.length);
});

test('an unknown id names the known ones; a missing model says how to fetch it', () => {
  assert.throws(() => resolveModel('nope', opts()), (e: unknown) => e instanceof ModelLoadError && /tiny-clip/.test(e.message) && /demo-clip/.test(e.message));
  assert.throws(() => resolveModel('tiny-clip', opts()), /not installed; run `clip-studio models fetch tiny-clip`/);
});

test('with no real model installed, the default is the bundled demo, and the reason says so', () => {
  const d = defaultModel('clip', opts());
  assert.equal(d.id, 'demo-clip');
  assert.match(d.reason, /bundled demo/);
  assert.match(d.reason, /models fetch tiny-clip/);
  assert.throws(() => defaultModel('vqgan', opts()), /No vqgan model is installed/);
});

test('fetchModel downloads from the hub with the token, records checksums, and the model resolves', async () => {
  const seen = new Set<string>();
  const r = await fetchModel('tiny-clip', { ...opts(), hfToken: 'hf_secret', onProgress: (p) => seen.add(p.file) });
  assert.deepEqual(r.files.map((f) => `${f.path}:${f.action}:${f.checksumSource}`),
    ['config.json:downloaded:pinned', 'model.safetensors:downloaded:pinned']);
  assert.deepEqual([...seen].sort(), ['config.json', 'model.safetensors']);
  const hubReq = server.requests.find((q) => q.path.endsWith('/tiny-clip/resolve/' + REV + '/model.safetensors'));
  assert.equal(hubReq?.headers.authorization, 'Bearer hf_secret');
  const m = resolveModel('tiny-clip', opts());
  assert.ok(readFileSync(m.files['model.safetensors']!).equals(weights));
  const recorded = JSON.parse(readFileSync(join(m.dir, '.checksums.json'), 'utf8'));
  assert.equal(recorded.files['model.safetensors'].sha256, sha(weights));
  // Now the real model wins over the demo.
  assert.equal(defaultModel('clip', opts()).id, 'tiny-clip');
  // A second fetch finds the files and asks the server nothing.
  const before = server.requests.length;
  const again = await fetchModel('tiny-clip', opts());
  assert.deepEqual(again.files.map((f) => f.action), ['present', 'present']);
  assert.equal(server.requests.length, before);
});

test('a 404 falls through to a mirror, and to an alternative file', async () => {
  const vq = await fetchModel('tiny-vqgan', opts());
  assert.deepEqual(vq.files.map((f) => f.action), ['downloaded', 'downloaded']);
  assert.ok(server.requests.some((q) => q.path === '/gone/last.ckpt'));
  const alt = await fetchModel('alt-clip', opts());
  assert.deepEqual(alt.files.map((f) => `${f.path}:${f.checksumSource}`), ['config.json:none', 'pytorch_model.bin:etag']);
  const m = resolveModel('alt-clip', opts());
  assert.equal(m.files['model.safetensors'], undefined);
  assert.ok(readFileSync(m.files['pytorch_model.bin']!).equals(torchWeights));
});

test('verifyModel checks against the recorded checksum and catches a file changed on disk', async () => {
  const good = await verifyModel('tiny-vqgan', opts());
  assert.equal(good.ok, true);
  assert.deepEqual(good.files.map((f) => `${f.path}:${f.status}:${f.expectedFrom}`), ['last.ckpt:ok:recorded', 'model.yaml:ok:recorded']);
  const path = join(dataDir, 'models', 'tiny-vqgan', 'last.ckpt');
  const bytes = readFileSync(path);
  bytes[100] ^= 0xff;
  writeFileSync(path, bytes);
  const bad = await verifyModel('tiny-vqgan', opts());
  assert.equal(bad.ok, false);
  const f = bad.files.find((x) => x.path === 'last.ckpt')!;
  assert.equal(f.status, 'mismatch');
  assert.equal(f.expected, sha(ckpt));
  assert.equal(f.sha256, sha(bytes));
  // The bundled demo verifies against its manifest's pin.
  assert.equal((await verifyModel('demo-clip', opts())).files[0]!.expectedFrom, 'manifest');
});

test('corrupted bytes from the server are refused: nothing installed, status stays partial', async () => {
  const corrupt = Buffer.from(weights);
  corrupt[corrupt.length - 1] ^= 1;
  server.files.set(`/org/tiny-clip/resolve/${REV}/model.safetensors`, { body: corrupt });
  try {
    const dataDir2 = join(root, 'data2');
    await assert.rejects(fetchModel('tiny-clip', { ...opts(), dataDir: dataDir2 }), ChecksumError);
    const dir = join(dataDir2, 'models', 'tiny-clip');
    assert.equal(existsSync(join(dir, 'model.safetensors')), false);
    assert.equal(existsSync(join(dir, 'model.safetensors.part')), false);
    assert.equal(listModels({ modelsDir, dataDir: dataDir2 }).find((m) => m.id === 'tiny-clip')!.status, 'partial');
    assert.throws(() => resolveModel('tiny-clip', { modelsDir, dataDir: dataDir2 }), /missing model\.safetensors/);
  } finally {
    server.files.set(`/org/tiny-clip/resolve/${REV}/model.safetensors`, { body: weights });
  }
});

test('a bad manifest is rejected naming the field and the rule', () => {
  const base = { id: 'x', family: 'clip', title: 'X', license: 'MIT', files: [{ path: 'a', required: true }] };
  assert.throws(() => parseManifest({ ...base, family: 'gpt' }, 'x/model.json'), /x\/model\.json .*`family`/);
  assert.throws(() => parseManifest({ ...base, source: { kind: 'huggingface', repo: 'o/r', revision: 'main' } }, 'm'),
    /`source\.revision` "main" is not a 40-hex commit/);
  assert.doesNotThrow(() => parseManifest({ ...base, source: { kind: 'huggingface', repo: 'o/r', revision: 'main', unpinned: true } }, 'm'));
  assert.throws(() => parseManifest({ ...base, source: { kind: 'url' } }, 'm'), /`files\.0\.url` is required/);
  assert.throws(() => parseManifest({ ...base, bundled: true, files: [{ path: '../etc/passwd', required: true }] }, 'm'), /files\.0\.path/);
  assert.throws(() => parseManifest(base, 'm'), /`source` is required unless "bundled"/);
});

test('the repo manifests are valid and pin revisions', () => {
  const real = listModels({ dataDir });
  const ids = real.map((m) => m.id);
  for (const id of ['clip-vit-base-patch32', 'clip-vit-base-patch16', 'clip-vit-large-patch14', 'vqgan-imagenet-f16-1024', 'vqgan-imagenet-f16-16384']) {
    assert.ok(ids.includes(id), `${id} has a manifest`);
  }
  for (const m of real) {
    if (m.manifest.source?.kind === 'huggingface') assert.match(m.manifest.source.revision, /^[0-9a-f]{40}$/);
  }
});
