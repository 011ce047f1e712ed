/**
 * The studio in one process: HTTP API + Next.js + socket.io + the engine's worker threads.
 *
 *   npm start          production (builds first if needed; see scripts/start.mjs)
 *   npm run dev        Next.js dev mode (tsx server.ts --dev)
 *
 * PORT (default 3000) and HOST choose where it listens; see server/config.ts for the rest.
 */
import { loadConfig, ConfigError } from './server/config';
import { createStudioServer } from './server/create';

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const dev = argv.includes('--dev');
  const apiOnly = argv.includes('--api-only');
  let config;
  try {
    config = loadConfig(process.env, { dev });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`clip-studio: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const studio = await createStudioServer({ config, next: !apiOnly });
  const addr = await studio.listen();
  const shown = config.host && config.host !== '0.0.0.0' && config.host !== '::' ? config.host : 'localhost';
  console.log(`CLIP Studio ${dev ? '(dev) ' : ''}on http://${shown.includes(':') ? `[${shown}]` : shown}:${addr.port}  (data: ${config.dataDir}, workers: ${config.workers})`);

  // Graceful stop: no new connections or jobs, running jobs get CLIP_STUDIO_SHUTDOWN_MS to finish,
  // the rest are journaled as interrupted (their clients told), then the database is closed.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      console.log(`${signal} again: stopping now.`);
      process.exit(1); // a second Ctrl-C: don't wait
    }
    stopping = true;
    const running = studio.queue.pending();
    console.log(`\n${signal}: closing${running ? `; ${running} job${running === 1 ? '' : 's'} may take up to ${config.shutdownMs / 1000} s to finish` : ''}…`);
    studio.shutdown(config.shutdownMs).then(
      ({ finished }) => {
        console.log(finished ? 'closed.' : 'closed; unfinished jobs were marked interrupted.');
        process.exit(0);
      },
      (err) => {
        console.error('error while closing:', err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

// Run when executed (tsx server.ts), not when imported by the CLI's `serve`.
if (import.meta.url === new URL(process.argv[1] ?? '', 'file://').href || process.argv[1]?.endsWith('/server.ts')) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
