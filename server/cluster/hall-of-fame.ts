/**
 * Play's hall of fame kept in Redis (REDIS_URL set), so every web node shows the same best
 * drawings: the same contract as the SQLite store (server/store/hall-of-fame.ts), async.
 *
 *   clip-studio:hof:<pack>:prompts         ZSET prompt → its best score (prompts by best first)
 *   clip-studio:hof:<pack>:p:<prompt>      ZSET entry id → score (the `keep` best)
 *   clip-studio:hof:entry:<id>             HASH createdAt, pack, prompt, nickname, score, png
 *
 * Adding and trimming run in one Lua script per (pack, prompt), so two nodes adding at once
 * never leave more than `keep` entries or an orphaned drawing. Ties keep the earlier entry.
 *
 * @example
 * const hall = new RedisHallOfFame(redisConnection(url));
 * await hall.add([{ pack: 'demo-doodles', prompt: 'house', nickname: 'Ada', score: 81.5, png }]);
 * await hall.best('demo-doodles');
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { REDIS_PREFIX } from '../jobs/bullmq';
import type { HallOfFameEntry, HallOfFameStore, NewHallOfFameEntry } from '../store/hall-of-fame';

const k = (pack: string) => `${REDIS_PREFIX}:hof:${encodeURIComponent(pack)}`;
const promptKey = (pack: string, prompt: string) => `${k(pack)}:p:${encodeURIComponent(prompt)}`;
const entryKey = (id: string) => `${REDIS_PREFIX}:hof:entry:${id}`;

/**
 * KEYS: the prompt's zset, the pack's prompt zset, the entry hash. ARGV: id, score, keep,
 * prompt, entry-key prefix, then the hash's field/value pairs. Returns 1 when the entry stayed.
 */
const ADD = `
redis.call('hset', KEYS[3], unpack(ARGV, 6))
redis.call('zadd', KEYS[1], ARGV[2], ARGV[1])
local keep = tonumber(ARGV[3])
local extra = redis.call('zrange', KEYS[1], 0, -keep - 1)
local stayed = 1
for _, id in ipairs(extra) do
  redis.call('zrem', KEYS[1], id)
  redis.call('del', ARGV[5] .. id)
  if id == ARGV[1] then stayed = 0 end
end
local best = redis.call('zrevrange', KEYS[1], 0, 0, 'withscores')
if best[2] then redis.call('zadd', KEYS[2], best[2], ARGV[4]) end
return stayed`;

export class RedisHallOfFame implements HallOfFameStore {
  constructor(private readonly redis: Redis, private readonly keep = 5) {
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`The \`keep\` option must be a positive integer, got ${keep}.`);
  }

  async add(entries: readonly NewHallOfFameEntry[]): Promise<string[]> {
    const kept: string[] = [];
    const now = new Date();
    for (const e of entries) {
      const id = randomUUID();
      // Ordered by score, then by age (1e-15 per ms: a later entry with the same score ranks below).
      const rank = e.score - now.getTime() * 1e-15;
      const fields = ['createdAt', now.toISOString(), 'pack', e.pack, 'prompt', e.prompt, 'nickname', e.nickname, 'score', String(e.score), 'png', e.png.toString('base64')];
      const stayed = await this.redis.eval(ADD, 3, promptKey(e.pack, e.prompt), `${k(e.pack)}:prompts`, entryKey(id),
        id, String(rank), String(this.keep), e.prompt, `${REDIS_PREFIX}:hof:entry:`, ...fields);
      if (stayed === 1) kept.push(id);
    }
    return kept;
  }

  async best(pack: string, perPrompt = this.keep): Promise<{ prompt: string; entries: HallOfFameEntry[] }[]> {
    const prompts = await this.redis.zrevrange(`${k(pack)}:prompts`, 0, -1);
    const out: { prompt: string; entries: HallOfFameEntry[] }[] = [];
    for (const prompt of prompts) {
      const ids = await this.redis.zrevrange(promptKey(pack, prompt), 0, perPrompt - 1);
      const entries: HallOfFameEntry[] = [];
      for (const id of ids) {
        const h = await this.redis.hgetall(entryKey(id));
        if (!h.png) continue; // trimmed by another node between the two reads
        entries.push({ id, createdAt: h.createdAt!, pack: h.pack!, prompt: h.prompt!, nickname: h.nickname!, score: Number(h.score), png: Buffer.from(h.png, 'base64') });
      }
      if (entries.length) out.push({ prompt, entries });
    }
    return out;
  }
}
