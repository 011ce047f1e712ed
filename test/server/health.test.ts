import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKEND_ORDER } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { HealthReportSchema, type HealthReport } from '../../server/protocol';

async function startApiServer(env: Record<string, string>): Promise<{ studio: StudioServer; base: string; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-health-'));
  const config = loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dataDir, ...env });
  const studio = await createStudioServer({ config, next: false });
  const addr = await studio.listen(0, '127.0.0.1');
  return { studio, base: `http://127.0.0.1:${addr.port}`, dataDir };
}

describe('GET /api/health', () => {
  let s: Awaited<ReturnType<typeof startApiServer>>;
  before(async () => {
    s = await startApiServer({});
  });
  after(async () => {
    await s.studio.close();
    rmSync(s.dataDir, { recursive: true, force: true });
  });

  it('answers with the measured report', async () => {
    const res = await fetch(`${s.base}/api/health`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const report = HealthReportSchema.parse(await res.json());
    assert.equal(report.node.version, process.version);
    const backend = report.engine.tfjs?.backend;
    assert.ok(backend, `a backend started: ${JSON.stringify(report.engine)}`);
    assert.ok((BACKEND_ORDER as readonly string[]).includes(backend.name));
    // Every backend earlier in the order than the one chosen is listed as skipped, with a reason.
    const earlier = BACKEND_ORDER.slice(0, BACKEND_ORDER.indexOf(backend.name as (typeof BACKEND_ORDER)[number]));
    assert.deepEqual(backend.skipped.map((x) => x.name), [...earlier]);
    for (const x of backend.skipped) assert.ok(x.why.length > 0);
    assert.notEqual(report.engine.threadId, 0, 'measured in a worker thread, not the main thread');
    assert.equal(report.data.dir, '$CLIP_STUDIO_DATA', 'named, not shown: server paths never reach a client (issue #8)');
    assert.equal(report.data.exists, true);
    assert.equal(report.data.writable, true);
    assert.ok(report.data.freeBytes !== null && report.data.freeBytes > 0);
    assert.equal(typeof report.engine.onnx?.available, 'boolean');
    if (report.engine.onnx?.available) assert.ok(report.engine.onnx.backends?.some((b) => b.name === 'cpu'));
    assert.equal(report.engine.models?.registry, true);
    assert.ok(Array.isArray(report.engine.models?.installed));
    assert.equal(report.jobs.workers, 1);
    assert.equal(report.ok, true);
  });

  it('says plainly when no real model is installed', async () => {
    const report = (await (await fetch(`${s.base}/api/health`)).json()) as HealthReport;
    const real = report.engine.models?.installed.filter((m) => !m.bundled) ?? [];
    // A fresh data directory has no downloaded models.
    assert.equal(real.length, 0);
    assert.ok(report.problems.some((p) => /no models installed/.test(p)), JSON.stringify(report.problems));
  });

  it('unknown API routes are JSON 404s, other methods 405', async () => {
    const r404 = await fetch(`${s.base}/api/nope`);
    assert.equal(r404.status, 404);
    assert.match(((await r404.json()) as { error: string }).error, /\/api\/nope/);
    const r405 = await fetch(`${s.base}/api/health`, { method: 'POST' });
    assert.equal(r405.status, 405);
  });
});

describe('health follows the configuration', () => {
  it('reports the backend CLIP_STUDIO_BACKEND forces, and why', async () => {
    const s = await startApiServer({ CLIP_STUDIO_BACKEND: 'cpu' });
    try {
      const report = (await (await fetch(`${s.base}/api/health?fresh=1`)).json()) as HealthReport;
      assert.equal(report.engine.tfjs?.backend?.name, 'cpu');
      assert.match(report.engine.tfjs?.backend?.reason ?? '', /CLIP_STUDIO_BACKEND=cpu/);
    } finally {
      await s.studio.close();
      rmSync(s.dataDir, { recursive: true, force: true });
    }
  });
});
