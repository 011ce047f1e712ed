import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerModelsCommand, type ModelsCommandContext } from '../../cli/commands/models';
import { CliError } from '../../cli/errors';
import { fixtureDirs, REPO_ROOT } from '../helpers/fixtures';
import { startFileServer, type FileServer } from '../helpers/file-server';

const weights = readFileSync(join(fixtureDirs()[0]!, 'clip.safetensors'));
const config = readFileSync(join(fixtureDirs()[0]!, 'clip_config.json'));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const REV = '57c216476eefef5ab752ec549e440a49ae4ae5f3';

let server: FileServer;
let root: string;

before(async () => {
  server = await startFileServer({
    [`/org/tiny/resolve/${REV}/config.json`]: { body: config },
    [`/org/tiny/resolve/${REV}/model.safetensors`]: { body: weights, etag: sha(weights) },
  });
  root = mkdtempSync(join(tmpdir(), 'clip-studio-cli-models-'));
  mkdirSync(join(root, 'manifests', 'tiny-clip'), { recursive: true });
  writeFileSync(join(root, 'manifests', 'tiny-clip', 'model.json'), JSON.stringify({
    id: 'tiny-clip', family: 'clip', title: 'Tiny', license: 'MIT',
    source: { kind: 'huggingface', repo: 'org/tiny', revision: REV },
    files: [{ path: 'config.json', required: true }, { path: 'model.safetensors', required: true, size: weights.length }],
  }));
});
after(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

/** Run `clip-studio models …` in-process against the temp manifests and data dir. */
async function run(args: string[], tty = false): Promise<{ out: string; err: string; error?: unknown }> {
  let out = '';
  let err = '';
  const ctx: ModelsCommandContext = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s), isTTY: tty },
    env: { CLIP_STUDIO_DATA: join(root, 'data'), HF_ENDPOINT: server.url, HF_TOKEN: 'hf_do_not_print' },
    manifestsDir: join(root, 'manifests'),
  };
  const program = new Command('clip-studio').exitOverride();
  registerModelsCommand(program, ctx);
  try {
    await program.parseAsync(args, { from: 'user' });
    return { out, err };
  } catch (error) {
    return { out, err, error };
  }
}

test('list, fetch with progress, list again, verify: the whole round trip', async () => {
  const before = await run(['models', 'list']);
  assert.match(before.out, /^ID\s+FAMILY\s+STATUS\s+SIZE$/m);
  assert.match(before.out, /^tiny-clip\s+clip\s+missing\s+~7\.1 MB$/m);

  const fetched = await run(['models', 'fetch', 'tiny-clip']);
  assert.equal(fetched.error, undefined, String(fetched.error));
  assert.match(fetched.err, /^model\.safetensors: 100% 7\.1 MB \/ 7\.1 MB$/m);
  assert.match(fetched.out, /model\.safetensors: downloaded, sha256 [0-9a-f]{64} \(checked against the hub's ETag\)/);
  assert.match(fetched.out, /tiny-clip is installed in /);
  assert.doesNotMatch(fetched.out + fetched.err, /hf_do_not_print/);
  assert.equal(server.requests.at(-1)?.headers.authorization, 'Bearer hf_do_not_print');

  const listed = await run(['models', 'list', '--json']);
  const entry = JSON.parse(listed.out).find((m: { id: string }) => m.id === 'tiny-clip');
  assert.equal(entry.status, 'installed');
  assert.equal(entry.dir, join(root, 'data', 'models', 'tiny-clip'));

  const verified = await run(['models', 'verify', 'tiny-clip']);
  assert.equal(verified.error, undefined);
  assert.match(verified.out, /OK\s+model\.safetensors: 7\.1 MB, sha256 matches the recorded checksum/);

  const again = await run(['models', 'fetch', 'tiny-clip']);
  assert.match(again.out, /already present/);
});

test('verify fails with exit code 1 when a file changed on disk; --json says which', async () => {
  await run(['models', 'fetch', 'tiny-clip']);
  const path = join(root, 'data', 'models', 'tiny-clip', 'config.json');
  const original = readFileSync(path);
  writeFileSync(path, Buffer.concat([original, Buffer.from(' ')]));
  try {
    const r = await run(['models', 'verify', 'tiny-clip', '--json']);
    assert.ok(r.error instanceof CliError && r.error.exitCode === 1, String(r.error));
    assert.match((r.error as Error).message, /config\.json \(mismatch\)/);
    const v = JSON.parse(r.out);
    assert.equal(v.ok, false);
    assert.equal(v.files.find((f: { path: string }) => f.path === 'config.json').status, 'mismatch');
  } finally {
    writeFileSync(path, original);
  }
});

test('a TTY gets one bar rewritten in place; --force downloads again', async () => {
  const r = await run(['models', 'fetch', 'tiny-clip', '--force'], true);
  assert.equal(r.error, undefined, String(r.error));
  assert.match(r.err, /\rmodel\.safetensors \[#{24}\] 100% 7\.1 MB \/ 7\.1 MB/);
  assert.match(r.out, /model\.safetensors: downloaded/);
});

test('an unknown id is an error that lists the known ids', async () => {
  const r = await run(['models', 'fetch', 'clip-vit-huge']);
  assert.match(String((r.error as Error)?.message), /Unknown model "clip-vit-huge"\. Known models: tiny-clip/);
});

test('the real clip-studio binary knows the repo manifests and exits 1 verifying a model not installed', () => {
  const env = { ...process.env, CLIP_STUDIO_DATA: join(root, 'empty-data'), HF_TOKEN: '' };
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'cli/bin.mjs'), 'models', 'verify', 'clip-vit-base-patch32'], { env, encoding: 'utf8', cwd: REPO_ROOT });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /MISSING\s+model\.safetensors: required, not on disk/);
  assert.match(r.stderr, /clip-vit-base-patch32 is not installed in .*empty-data.*; run `clip-studio models fetch clip-vit-base-patch32`/);
});
