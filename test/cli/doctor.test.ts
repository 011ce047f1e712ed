import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HealthReportSchema } from '../../server/protocol';
import { REPO_ROOT } from '../helpers/fixtures';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'cli', 'bin.mjs');

function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete e.NODE_OPTIONS; // the test runner's loader flags must not leak into the CLI under test
  return e;
}

describe('clip-studio doctor', () => {
  it('--json prints the health report, measured', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-doctor-'));
    try {
      // Run from another directory: the bin must find tsx and the worker on its own.
      const { stdout } = await run(process.execPath, [BIN, 'doctor', '--json'], { cwd: tmpdir(), env: env({ CLIP_STUDIO_DATA: dataDir, CLIP_STUDIO_BACKEND: 'cpu' }) });
      const report = HealthReportSchema.parse(JSON.parse(stdout));
      assert.equal(report.node.version, process.version);
      assert.equal(report.engine.tfjs?.backend?.name, 'cpu');
      assert.match(report.engine.tfjs?.backend?.reason ?? '', /forced by CLIP_STUDIO_BACKEND=cpu/);
      assert.equal(report.data.dir, dataDir);
      assert.equal(report.data.writable, true);
      assert.equal(report.engine.models?.registry, true);
      assert.equal(report.ok, true);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('prints readable text by default', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'doctor'], { env: env({ CLIP_STUDIO_BACKEND: 'cpu', CLIP_STUDIO_DATA: join(tmpdir(), 'clip-studio-doctor-text') }) });
    assert.match(stdout, /tfjs\s+\S+, backend cpu/);
    assert.match(stdout, /onnxruntime/);
    assert.match(stdout, /^OK: /m);
  });

  it('a bad environment variable exits 2 with a message naming it', async () => {
    await assert.rejects(run(process.execPath, [BIN, 'doctor'], { env: env({ CLIP_STUDIO_WORKERS: 'many' }) }), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /CLIP_STUDIO_WORKERS must be an integer 1–64.*got "many"/);
      return true;
    });
  });

  it('an unknown command exits 2', async () => {
    await assert.rejects(run(process.execPath, [BIN, 'frobnicate'], { env: env({}) }), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /unknown command/);
      return true;
    });
  });
});
