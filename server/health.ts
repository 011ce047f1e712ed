/**
 * The health report behind `GET /api/health` and `clip-studio doctor`. Everything in it is
 * measured, not assumed: the tfjs backend and onnxruntime come from a `health` job run inside an
 * engine worker (the thread that computes), the data directory is probed for writing, free disk
 * comes from statfs.
 */
import { access, constants, mkdir, statfs, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { BusyError, type EngineHealth } from '../engine/index';
import type { StudioConfig } from './config';
import type { JobQueue } from './jobs/queue';
import { PROTOCOL_VERSION, type HealthReport } from './protocol';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
export const STUDIO_VERSION = pkg.version;

type EngineSection = HealthReport['engine'];

async function probeData(dir: string): Promise<HealthReport['data']> {
  let exists = false;
  let writable = false;
  let error: string | undefined;
  try {
    exists = (await stat(dir)).isDirectory();
    if (!exists) error = `${dir} exists but is not a directory`;
  } catch {
    exists = false;
  }
  // Writable: the directory itself, or (if it is not there yet) the nearest ancestor that is.
  let probe = dir;
  if (!exists && !error) {
    while (probe !== dirname(probe)) {
      probe = dirname(probe);
      try {
        await stat(probe);
        break;
      } catch { /* keep climbing */ }
    }
  }
  if (!error) {
    try {
      await access(probe, constants.W_OK);
      writable = true;
    } catch (err) {
      error = `${probe} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }
  let freeBytes: number | null = null;
  let totalBytes: number | null = null;
  try {
    const s = await statfs(probe);
    freeBytes = s.bavail * s.bsize;
    totalBytes = s.blocks * s.bsize;
  } catch { /* statfs unsupported here: report null, not a guess */ }
  return { dir, exists, writable, freeBytes, totalBytes, ...(error ? { error } : {}) };
}

/** Create the data directory at start; a failure is reported by the health check, not thrown. */
export async function ensureDataDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true }).catch(() => {});
}

/**
 * Runs the engine's `health` job and keeps the last answer, so a health request while every
 * worker is busy with a long job answers at once with the previous measurement (and its time).
 */
export class EngineHealthProbe {
  private last: EngineSection | undefined;
  private inflight: Promise<EngineSection> | undefined;

  constructor(private readonly queue: JobQueue, private readonly timeoutMs = 60_000) {}

  /** Fresh if a worker is free (or nothing was measured yet), else the cached report. */
  async get(opts: { fresh?: boolean } = {}): Promise<EngineSection> {
    const s = this.queue.stats();
    const workerFree = s.busy < s.workers && s.queued === 0;
    if (this.last && !opts.fresh && !workerFree) return this.last;
    this.inflight ??= this.measure().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async measure(): Promise<EngineSection> {
    let handle;
    try {
      handle = this.queue.submit<EngineHealth>('health', {});
    } catch (err) {
      if (err instanceof BusyError && this.last) return this.last;
      return { error: `could not queue the health job: ${(err as Error).message}` };
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the engine worker in ${this.timeoutMs / 1000}s`)), this.timeoutMs);
    });
    try {
      const h = await Promise.race([handle.result, timeout]);
      this.last = { checkedAt: new Date().toISOString(), ...h };
      return this.last;
    } catch (err) {
      handle.cancel();
      return { error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Assemble the report; `problems` lists what a person should fix, in words. */
export async function buildHealthReport(config: StudioConfig, queue: JobQueue, engine: EngineHealthProbe, opts: { fresh?: boolean } = {}): Promise<HealthReport> {
  const [eng, data] = await Promise.all([engine.get(opts), probeData(config.dataDir)]);
  const problems: string[] = [];
  if (eng.error) problems.push(`engine: ${eng.error}`);
  if (eng.tfjs?.error) problems.push(`tfjs: ${eng.tfjs.error}`);
  if (eng.tfjs && !eng.tfjs.backend && !eng.tfjs.error) problems.push('tfjs: no backend started');
  if (eng.onnx && !eng.onnx.available) problems.push(`onnxruntime-node unavailable: ${eng.onnx.error ?? 'unknown reason'}`);
  if (eng.models) {
    if (!eng.models.registry) problems.push(`models: ${eng.models.error ?? 'the model registry is not available'}`);
    else if (!eng.models.installed.some((m) => !m.bundled)) {
      problems.push(`no models installed${eng.models.installed.length ? ' (only the bundled demo models)' : ''}: npx clip-studio models fetch clip-vit-base-patch32`);
    }
    for (const m of eng.models.installed) if (!m.verified) problems.push(`model ${m.id} failed verification${m.problem ? `: ${m.problem}` : ''}`);
  }
  if (!data.writable) problems.push(`data directory: ${data.error ?? `${data.dir} is not writable`}`);
  return {
    ok: Boolean(eng.tfjs?.backend) && data.writable,
    problems,
    protocolVersion: PROTOCOL_VERSION,
    version: STUDIO_VERSION,
    checkedAt: new Date().toISOString(),
    node: { version: process.version, platform: process.platform, arch: process.arch },
    engine: eng,
    data,
    jobs: queue.stats(),
  };
}
