/** `clip-studio serve`: start the studio server (the same as `npm start` without the build step). */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { CliError } from '../errors';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('start the studio server (PORT and HOST from the environment)')
    .option('--dev', 'Next.js dev mode (hot reload)')
    .option('--api-only', 'serve /api and socket.io without the Next.js pages')
    .action(async (opts: { dev?: boolean; apiOnly?: boolean }) => {
      if (!opts.dev && !opts.apiOnly && !existsSync(new URL('../../.next/BUILD_ID', import.meta.url))) {
        throw new CliError('No production build of the app yet: run `npm start` (it builds first), `npm run build`, or `clip-studio serve --dev`.');
      }
      const { main } = await import('../../server');
      await main([...(opts.dev ? ['--dev'] : []), ...(opts.apiOnly ? ['--api-only'] : [])]);
    });
}
