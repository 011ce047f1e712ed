/**
 * The job journal: one row per job a client started (SQLite, table `jobs`), written as it moves
 * queued → running → done | failed | cancelled. A process that stops with rows still queued or
 * running (a crash, a kill, a shutdown past its deadline) left those jobs unfinished; the next
 * start marks them `interrupted` with a reason, so they are reported, not silently lost.
 * Labels are what a person typed (a prompt), never server paths.
 */
import type { Db } from './db';

export const JOB_STATES = ['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface JobRecord {
  id: string;
  kind: string;
  state: JobState;
  /** What the job was about, for people (a generate job's prompt); null when there is none. */
  label: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  /** What it made (a gallery item id), when it made something. */
  resultId: string | null;
}

interface Row {
  id: string; kind: string; state: JobState; label: string | null; created_at: string; started_at: string | null;
  finished_at: string | null; error_code: string | null; error_message: string | null; result_id: string | null;
}

const fromRow = (r: Row): JobRecord => ({
  id: r.id, kind: r.kind, state: r.state, label: r.label, createdAt: r.created_at, startedAt: r.started_at, finishedAt: r.finished_at,
  error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null, resultId: r.result_id,
});

/** Labels are capped: a journal row is not a place to keep a 10 kB payload. */
const LABEL_MAX = 500;

export class JobStore {
  constructor(private readonly db: Db) {}

  queued(id: string, kind: string, label: string | null): void {
    this.db.prepare('INSERT OR IGNORE INTO jobs (id, kind, state, label, created_at) VALUES (?, ?, \'queued\', ?, ?)')
      .run(id, kind, label === null ? null : label.slice(0, LABEL_MAX), new Date().toISOString());
  }

  started(id: string): void {
    this.db.prepare('UPDATE jobs SET state = \'running\', started_at = ? WHERE id = ? AND state = \'queued\'').run(new Date().toISOString(), id);
  }

  /** Record how a job ended; a job already finished keeps its first ending. */
  finished(id: string, state: Exclude<JobState, 'queued' | 'running'>, opts: { error?: { code: string; message: string }; resultId?: string } = {}): void {
    this.db.prepare(`UPDATE jobs SET state = ?, finished_at = ?, error_code = ?, error_message = ?, result_id = ?
      WHERE id = ? AND state IN ('queued', 'running')`)
      .run(state, new Date().toISOString(), opts.error?.code ?? null, opts.error?.message ?? null, opts.resultId ?? null, id);
  }

  /** What a finished job made (a gallery item id). */
  setResult(id: string, resultId: string): void {
    this.db.prepare('UPDATE jobs SET result_id = ? WHERE id = ?').run(resultId, id);
  }

  /** At start: every job a previous process left queued or running becomes `interrupted`. Returns how many. */
  interruptUnfinished(message: string): number {
    return this.db.prepare(`UPDATE jobs SET state = 'interrupted', finished_at = ?, error_code = 'INTERRUPTED', error_message = ?
      WHERE state IN ('queued', 'running')`).run(new Date().toISOString(), message).changes;
  }

  get(id: string): JobRecord | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** Newest first, optionally only one state. */
  list(opts: { limit?: number; offset?: number; state?: JobState } = {}): JobRecord[] {
    const rows = (opts.state
      ? this.db.prepare('SELECT * FROM jobs WHERE state = ? ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?').all(opts.state, opts.limit ?? 100, opts.offset ?? 0)
      : this.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?').all(opts.limit ?? 100, opts.offset ?? 0)) as Row[];
    return rows.map(fromRow);
  }

  count(state?: JobState): number {
    const row = (state ? this.db.prepare('SELECT count(*) AS n FROM jobs WHERE state = ?').get(state) : this.db.prepare('SELECT count(*) AS n FROM jobs').get()) as { n: number };
    return row.n;
  }
}
