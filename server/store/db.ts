/**
 * The studio's SQLite database (better-sqlite3; server/store/ is its only importer):
 * `<dataDir>/studio.db` in WAL mode, schema brought up to date by numbered migrations kept in
 * `PRAGMA user_version`, each applied in its own transaction.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;

/** Append only: a released migration is never edited, a new one is added after it. */
const MIGRATIONS: readonly string[] = [
  // 1: the gallery of generated images and the recipes that made them.
  `CREATE TABLE gallery (
     id TEXT PRIMARY KEY,
     created_at TEXT NOT NULL,
     prompt TEXT NOT NULL,
     seed INTEGER NOT NULL,
     width INTEGER NOT NULL,
     height INTEGER NOT NULL,
     image_file TEXT NOT NULL,
     animation_file TEXT,
     recipe TEXT NOT NULL
   );
   CREATE INDEX gallery_newest ON gallery (created_at DESC, id DESC);`,
  // 2: Play's hall of fame: the best drawings per prompt (re-encoded PNGs, at most a few per prompt).
  `CREATE TABLE hall_of_fame (
     id TEXT PRIMARY KEY,
     created_at TEXT NOT NULL,
     pack TEXT NOT NULL,
     prompt TEXT NOT NULL,
     nickname TEXT NOT NULL,
     score REAL NOT NULL,
     png BLOB NOT NULL
   );
   CREATE INDEX hall_of_fame_best ON hall_of_fame (pack, prompt, score DESC);`,
  // 3: every job a client started, so a restart can say which ones it interrupted.
  `CREATE TABLE jobs (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
     label TEXT,
     created_at TEXT NOT NULL,
     started_at TEXT,
     finished_at TEXT,
     error_code TEXT,
     error_message TEXT,
     result_id TEXT
   );
   CREATE INDEX jobs_newest ON jobs (created_at DESC);
   CREATE INDEX jobs_unfinished ON jobs (state) WHERE state IN ('queued', 'running');`,
  // 4: which process journaled a job (`host:pid:random`) and which queue ran it ('in-process' or
  // 'bullmq'), so a restart interrupts only jobs that died with their process (rows before: NULL).
  `ALTER TABLE jobs ADD COLUMN node TEXT;
   ALTER TABLE jobs ADD COLUMN queue TEXT;`,
];

/**
 * Open (creating if needed) the database in `dataDir` and migrate it.
 *
 * @example
 * const db = openDatabase(config.dataDir);
 * db.prepare('SELECT count(*) AS n FROM gallery').get();
 */
export function openDatabase(dataDir: string, file = 'studio.db'): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, file));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

/** Apply the migrations past the database's user_version; returns the version reached. */
export function migrate(db: Db): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`The database is at schema version ${current}, newer than this studio knows (${MIGRATIONS.length}); upgrade the studio.`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}
