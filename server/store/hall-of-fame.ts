/**
 * Play's hall of fame: the best drawings per prompt, kept in SQLite (db.ts, migration 2).
 * Each entry is a drawing the server re-encoded (a small PNG, stored in the row), its CLIP
 * score for the prompt, the player's nickname and when. Only the best `keep` per (pack,
 * prompt) stay, so the table stays small; adding and trimming are one transaction.
 *
 * @example
 * const hall = new HallOfFame(db);
 * hall.add([{ pack: 'demo-doodles', prompt: 'house', nickname: 'Ada', score: 81.5, png }]);
 * hall.best('demo-doodles'); // [{ prompt: 'house', entries: [...] }, ...]
 */
import { randomUUID } from 'node:crypto';
import type { Db } from './db';

export interface HallOfFameEntry {
  id: string;
  createdAt: string;
  pack: string;
  prompt: string;
  nickname: string;
  score: number;
  png: Buffer;
}

export type NewHallOfFameEntry = Omit<HallOfFameEntry, 'id' | 'createdAt'>;

/** Where the hall of fame lives: this SQLite store, or Redis across web nodes (server/cluster/hall-of-fame.ts). */
export interface HallOfFameStore {
  /** Add drawings; each (pack, prompt) then keeps only its best. Returns the ids that made it. */
  add(entries: readonly NewHallOfFameEntry[]): string[] | Promise<string[]>;
  /** The best entries of a pack, grouped by prompt (best first in each; prompts by their best score). */
  best(pack: string, perPrompt?: number): { prompt: string; entries: HallOfFameEntry[] }[] | Promise<{ prompt: string; entries: HallOfFameEntry[] }[]>;
}

interface Row { id: string; created_at: string; pack: string; prompt: string; nickname: string; score: number; png: Buffer }

const fromRow = (r: Row): HallOfFameEntry => ({
  id: r.id, createdAt: r.created_at, pack: r.pack, prompt: r.prompt, nickname: r.nickname, score: r.score, png: r.png,
});

export class HallOfFame implements HallOfFameStore {
  constructor(private readonly db: Db, private readonly keep = 5) {
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`The \`keep\` option must be a positive integer, got ${keep}.`);
  }

  /** Add drawings; each (pack, prompt) then keeps only its `keep` best. Returns the ids that made it. */
  add(entries: readonly NewHallOfFameEntry[]): string[] {
    const insert = this.db.prepare('INSERT INTO hall_of_fame (id, created_at, pack, prompt, nickname, score, png) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const trim = this.db.prepare(`DELETE FROM hall_of_fame WHERE pack = ? AND prompt = ? AND id NOT IN (
      SELECT id FROM hall_of_fame WHERE pack = ? AND prompt = ? ORDER BY score DESC, created_at ASC, rowid ASC LIMIT ?)`);
    const exists = this.db.prepare('SELECT 1 FROM hall_of_fame WHERE id = ?');
    return this.db.transaction(() => {
      const ids: string[] = [];
      const now = new Date().toISOString();
      for (const e of entries) {
        const id = randomUUID();
        insert.run(id, now, e.pack, e.prompt, e.nickname, e.score, e.png);
        ids.push(id);
      }
      for (const key of new Set(entries.map((e) => JSON.stringify([e.pack, e.prompt])))) {
        const [pack, prompt] = JSON.parse(key) as [string, string];
        trim.run(pack, prompt, pack, prompt, this.keep);
      }
      return ids.filter((id) => exists.get(id));
    })();
  }

  /** The best entries of a pack, grouped by prompt (best first in each; prompts by their best score). */
  best(pack: string, perPrompt = this.keep): { prompt: string; entries: HallOfFameEntry[] }[] {
    const rows = this.db.prepare('SELECT * FROM hall_of_fame WHERE pack = ? ORDER BY prompt, score DESC, created_at ASC').all(pack) as Row[];
    const groups = new Map<string, HallOfFameEntry[]>();
    for (const r of rows) {
      const list = groups.get(r.prompt) ?? [];
      if (list.length < perPrompt) list.push(fromRow(r));
      groups.set(r.prompt, list);
    }
    return [...groups].map(([prompt, entries]) => ({ prompt, entries })).sort((a, b) => b.entries[0]!.score - a.entries[0]!.score);
  }
}
