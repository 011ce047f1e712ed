/**
 * `clip-studio worker`: run the studio's jobs from Redis (REDIS_URL) on this machine's engine
 * threads (CLIP_STUDIO_WORKERS, CLIP_STUDIO_BACKEND, CLIP_STUDIO_DATA/MODELS as for the server).
 * Web nodes started with the same REDIS_URL enqueue; this process computes. SIGTERM/SIGINT let
 * running jobs finish; a second signal stops at once (BullMQ hands those jobs to another worker).
 */
import type { Command } from 'commander';
import { loadConfig } from '../../server/config';
import { CliError } from '../errors';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run studio jobs taken from Redis (REDIS_URL) on this machine')
    .option('--lock-ms <ms>', 'job lock duration: a worker that dies has its job retried after about this long', '30000')
    .action(async (opts: { lockMs: string }) => {
      const config = loadConfig();
      if (!config.redisUrl) throw new CliError('clip-studio worker takes its jobs from Redis: set REDIS_URL (e.g. redis://gpu-queue:6379).', 2);
      const lockMs = Number(opts.lockMs);
      if (!Number.isInteger(lockMs) || lockMs < 1000 || lockMs > 600_000) throw new CliError(`--lock-ms must be an integer 1000–600000, got ${JSON.stringify(opts.lockMs)}`, 2);
      const { startJobWorker } = await import('../../server/cluster/worker');
      const w = await startJobWorker({
        url: config.redisUrl,
        threads: config.workers,
        lockDurationMs: lockMs,
        engine: { backend: config.backend, dataDir: config.dataDir, modelsDir: config.modelsDir, testJobs: config.test },
      });
      console.log(`clip-studio worker: ${config.workers} engine thread${config.workers === 1 ? '' : 's'}, taking jobs from ${redact(config.redisUrl)}`);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) process.exit(1);
        stopping = true;
        console.log(`${signal}: finishing running jobs, then stopping…`);
        w.close().then(() => process.exit(0), (err) => {
          console.error('error while stopping:', err);
          process.exit(1);
        });
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      await new Promise(() => {}); // runs until a signal
    });
}

/** The URL without its password, for the log. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'REDIS_URL';
  }
}
