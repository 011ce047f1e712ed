/**
 * The job journal: one row per job a client started (SQLite, table `jobs`), written as it moves
 * queued → running → done | failed | cancelled. A process that stops with rows still queued or
 * running (a crash, a kill, a shutdown past its deadline) left those jobs unfinished; the next
 * start marks them `interrupted` with a reason, so they are reported, not silently lost.
 * Labels are what a person typed (a prompt), never server paths.
 *
 * Scale-out: each row names the process that journaled it (`node`, `host:pid:random`) and the
 * queue that runs it. Only in-process jobs die with their process, so a start interrupts only
 * in-process rows whose process is gone; BullMQ jobs may still be running on a worker and are
 * reconciled with Redis instead (`recoverJournal` in server/jobs/queue.ts).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
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

/** Which queue runs a journaled job (NULL in rows written before the column existed). */
export type JobRunner = 'in-process' | 'bullmq';

/** This process's name in the journal: host, pid and a random part (a pid is reused, in containers always). */
export function newNodeId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/**
 * Whether the process that wrote `node` is gone. A row from another host counts as gone: only
 * in-process rows are asked about, and in-process mode has one process per data dir (a
 * recreated container comes back under a new host name). On this host: gone when its pid is
 * ours now (a previous run of this process) or no longer exists.
 */
export function nodeGone(node: string | null, self: string): boolean {
  if (node === self) return false;
  const m = node ? /^(.*):(\d+):[0-9a-f]+$/.exec(node) : null;
  if (!m || m[1] !== hostname()) return true;
  const pid = Number(m[2]);
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'; // EPERM: it exists, someone else's
  }
}

const fromRow = (r: Row): JobRecord => ({
  id: r.id, kind: r.kind, state: r.state, label: r.label, createdAt: r.created_at, startedAt: r.started_at, finishedAt: r.finished_at,
  error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null, resultId: r.result_id,
});

/** Labels are capped: a journal row is not a place to keep a 10 kB payload. */
const LABEL_MAX = 500;

export class JobStore {
  /** `node`: this process (default a new id); `queue`: the queue its jobs run on (default in-process). */
  constructor(private readonly db: Db, readonly self: { node: string; queue: JobRunner } = { node: newNodeId(), queue: 'in-process' }) {}

  queued(id: string, kind: string, label: string | null): void {
    this.db.prepare('INSERT OR IGNORE INTO jobs (id, kind, state, label, created_at, node, queue) VALUES (?, ?, \'queued\', ?, ?, ?, ?)')
      .run(id, kind, label === null ? null : label.slice(0, LABEL_MAX), new Date().toISOString(), this.self.node, this.self.queue);
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

  /**
   * At start: in-process jobs (and rows from before the queue was recorded) left queued or
   * running by a process that is gone become `interrupted`. BullMQ rows are left alone: their
   * job may still be running on a worker. Returns how many were marked.
   */
  interruptUnfinished(message: string): number {
    const rows = this.db.prepare(`SELECT id, node FROM jobs WHERE state IN ('queued', 'running') AND (queue IS NULL OR queue = 'in-process')`)
      .all() as { id: string; node: string | null }[];
    const mark = this.db.prepare(`UPDATE jobs SET state = 'interrupted', finished_at = ?, error_code = 'INTERRUPTED', error_message = ?
      WHERE id = ? AND state IN ('queued', 'running')`);
    const now = new Date().toISOString();
    let n = 0;
    this.db.transaction(() => {
      for (const r of rows) if (nodeGone(r.node, this.self.node)) n += mark.run(now, message, r.id).changes;
    })();
    return n;
  }

  /** Ids of unfinished rows on `queue` journaled by other processes (a start reconciles BullMQ's with Redis). */
  unfinishedElsewhere(queue: JobRunner): string[] {
    return (this.db.prepare(`SELECT id FROM jobs WHERE state IN ('queued', 'running') AND queue = ? AND (node IS NULL OR node != ?)`)
      .all(queue, this.self.node) as { id: string }[]).map((r) => r.id);
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
