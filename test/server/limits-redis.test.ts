/**
 * Rate limits across web nodes (REDIS_URL): per-address budgets live in a real redis-server,
 * so two limiters (two nodes) see one budget; two studio servers share it over HTTP, and each
 * closes its Redis connection when it closes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { DEFAULT_RATE_RULES, GuardMetrics, memoryStore, openRateLimitRedis, RateLimits, redisRateStore, type RateRules } from '../../server/limits';
import { requireRedis, startRedis, type RedisInstance } from '../helpers/redis';

const redisBinary = requireRedis();
const RULES: RateRules = {
  ...DEFAULT_RATE_RULES,
  guess: { perConnection: { points: 100, seconds: 60 }, perAddress: { points: 3, seconds: 60 } },
  upload: { perConnection: { points: 100, seconds: 60 }, perAddress: { points: 2, seconds: 60 } },
};

describe('rate limits in Redis', { skip: redisBinary.skip }, () => {
  let redis: RedisInstance;
  const clients: Redis[] = [];
  before(async () => {
    redis = await startRedis(redisBinary.path!);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await redis?.stop();
  });

  it('two limiters (two nodes) sharing one Redis see one budget per address; memory stores would not', async () => {
    const [a, b] = [await openRateLimitRedis(redis.url), await openRateLimitRedis(redis.url)];
    clients.push(a, b);
    const nodeA = new RateLimits(RULES, new GuardMetrics(), redisRateStore(a));
    const nodeB = new RateLimits(RULES, new GuardMetrics(), redisRateStore(b));
    for (let i = 0; i < 3; i++) assert.equal((await nodeA.take('guess', { connection: `a${i}`, address: '203.0.113.9' })).ok, true, `take ${i + 1} on A`);
    const refused = await nodeB.take('guess', { connection: 'b1', address: '203.0.113.9' });
    assert.ok(!refused.ok, 'B refuses: A used the address budget');
    assert.equal(refused.scope, 'address');
    assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 60_000, `retry after ${refused.retryAfterMs} ms`);
    assert.equal((await nodeB.take('guess', { connection: 'b1', address: '198.51.100.3' })).ok, true, 'another address has its own budget');
    // The same sequence on memory stores: each node has its own budget (the bug this fixes).
    const memA = new RateLimits(RULES, new GuardMetrics(), memoryStore);
    const memB = new RateLimits(RULES, new GuardMetrics(), memoryStore);
    for (let i = 0; i < 3; i++) await memA.take('guess', { connection: `a${i}`, address: '203.0.113.9' });
    assert.equal((await memB.take('guess', { connection: 'b1', address: '203.0.113.9' })).ok, true);
  });

  it('two studio servers with REDIS_URL share the upload budget, and close their Redis connections', { timeout: 60_000 }, async () => {
    const probe = new Redis(redis.url);
    clients.push(probe);
    const connections = async () => (await probe.client('LIST') as string).trim().split('\n').length;
    const before = await connections();
    const dirs: string[] = [];
    const nodes: StudioServer[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const dir = mkdtempSync(join(tmpdir(), 'clip-studio-limits-'));
        dirs.push(dir);
        nodes.push(await createStudioServer({
          config: loadConfig({ NODE_ENV: 'test', CLIP_STUDIO_DATA: dir, CLIP_STUDIO_BACKEND: 'cpu', REDIS_URL: redis.url }),
          next: false, rateRules: RULES,
        }));
      }
      const urls = await Promise.all(nodes.map(async (n) => `http://127.0.0.1:${(await n.listen(0, '127.0.0.1')).port}`));
      const upload = (url: string) => fetch(`${url}/api/uploads?field=image`, { method: 'POST', body: 'not an image' });
      assert.equal((await upload(urls[0]!)).status, 400, 'charged on A, then refused as not an image');
      assert.equal((await upload(urls[0]!)).status, 400);
      const third = await upload(urls[1]!);
      assert.equal(third.status, 429, 'B refuses: A used the budget of 127.0.0.1');
      assert.match((await third.json() as { error: string }).error, /Too many uploads from this address/);
    } finally {
      for (const n of nodes) await n.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
    // Closed servers leave no connection behind (the limiter's client included).
    for (let i = 0; i < 50 && (await connections()) > before; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await connections(), before);
  });
});
