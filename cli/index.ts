/**
 * The clip-studio command line: thin wrappers over the engine and server/jobs.
 *
 *   clip-studio doctor [--json]     what works here, measured
 *   clip-studio models …            list, fetch and verify models
 *   clip-studio serve [--dev]       start the studio server
 *   clip-studio classify IMAGE...   score images against text labels
 *   clip-studio generate PROMPT -o out.png   VQGAN+CLIP text-to-image
 *   clip-studio caption IMAGE...  describe images (CLIP ranks LLM or offline candidates)
 *   clip-studio worker            run jobs from Redis (REDIS_URL) on this machine
 *
 * Exit codes: 0 ok, 1 failure (or doctor: cannot compute), 2 bad usage or configuration.
 */
import { Command, CommanderError } from 'commander';
import { ClipStudioError } from '../engine/index';
import { ConfigError } from '../server/config';
import { STUDIO_VERSION } from '../server/health';
import { registerClassifyCommand } from './commands/classify';
import { registerCaptionCommand } from './commands/caption';
import { registerDoctorCommand } from './commands/doctor';
import { registerGenerateCommand } from './commands/generate';
import { registerModelsCommand } from './commands/models';
import { registerServeCommand } from './commands/serve';
import { registerWorkerCommand } from './commands/worker';
import { CliError } from './errors';

export function buildProgram(): Command {
  const program = new Command('clip-studio')
    .description("CLIP Studio: generate, caption and play with OpenAI's CLIP")
    .version(STUDIO_VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerDoctorCommand(program);
  registerModelsCommand(program);
  registerServeCommand(program);
  registerClassifyCommand(program);
  registerGenerateCommand(program);
  registerCaptionCommand(program);
  registerWorkerCommand(program);
  return program;
}

function fail(message: string, code: number): never {
  console.error(`clip-studio: ${message}`);
  process.exit(code);
}

try {
  const program = buildProgram();
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version "errors" are successes; commander has already printed the message.
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof ConfigError) fail(err.message, 2);
  if (err instanceof CliError) fail(err.message, err.exitCode);
  if (err instanceof ClipStudioError) fail(err.message, 1);
  console.error(err);
  process.exit(1);
}
