/**
 * `clip-studio doctor`: the same measured report as GET /api/health, from an engine worker in
 * this process. Human text by default, `--json` for the report object. Exit code 0 when the
 * studio can compute, 1 when it cannot (problems listed), 2 for a bad configuration.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../server/config';
import { createJobQueue } from '../../server/jobs/queue';
import { buildHealthReport, EngineHealthProbe } from '../../server/health';
import type { HealthReport } from '../../server/protocol';

function bytes(n: number | null): string {
  if (n === null) return 'unknown';
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

export function formatDoctor(r: HealthReport): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`  ${k.padEnd(12)}${v}`);
  lines.push(`CLIP Studio ${r.version} — doctor (${r.checkedAt})`);
  row('node', `${r.node.version} (${r.node.platform}/${r.node.arch})`);
  const tf = r.engine.tfjs;
  const b = tf?.backend;
  if (b) {
    row('tfjs', `${tf.version}, backend ${b.name} [${b.tfBackend}]${b.device ? ` on ${b.device}` : ''}${b.threads ? `, ${b.threads} threads` : ''} — ${b.reason}`);
    for (const s of b.skipped) row('  skipped', `${s.name}: ${s.why}`);
  } else {
    row('tfjs', `no backend: ${tf?.error ?? r.engine.error ?? 'unknown'}`);
  }
  const ort = r.engine.onnx;
  if (ort?.available) {
    const provider = ort.provider ? `; provider ${ort.provider}${ort.provider === 'auto' ? ` (${ort.cuda ? 'CUDA installed' : 'CPU; CLIP_STUDIO_ORT_PROVIDER=webgpu runs on a GPU with a Vulkan driver'})` : ''}` : '';
    row('onnxruntime', `${ort.version}${provider}${ort.threads ? `, ${ort.threads} threads` : ''}; backends ${ort.backends?.map((x) => `${x.name}${x.bundled ? '' : ' (not bundled)'}`).join(', ')}`);
  }
  else row('onnxruntime', `unavailable: ${ort?.error ?? 'not checked'}`);
  const m = r.engine.models;
  if (!m) row('models', 'not checked');
  else if (!m.registry) row('models', m.error ?? 'registry unavailable');
  else if (!m.installed.length) row('models', `none installed${m.dir ? ` in ${m.dir}` : ''}`);
  else for (const x of m.installed) row('models', `${x.id}: ${x.verified ? 'verified' : `NOT verified${x.problem ? ` (${x.problem})` : ''}`}`);
  row('data', `${r.data.dir} — ${r.data.exists ? '' : 'missing, '}${r.data.writable ? 'writable' : 'NOT writable'}, ${bytes(r.data.freeBytes)} free of ${bytes(r.data.totalBytes)}`);
  row('worker', `thread ${r.engine.threadId ?? '?'}${r.engine.checkedAt ? ` at ${r.engine.checkedAt}` : ''}`);
  if (r.problems.length) {
    lines.push('', 'Problems:');
    for (const p of r.problems) lines.push(`  - ${p}`);
  }
  lines.push('', r.ok ? 'OK: the studio can compute here.' : 'NOT OK: the studio cannot compute here (see problems).');
  return lines.join('\n');
}

export async function runDoctor(): Promise<HealthReport> {
  const config = loadConfig();
  const queue = createJobQueue({ ...config, workers: 1 });
  try {
    return await buildHealthReport(config, queue, new EngineHealthProbe(queue), { fresh: true });
  } finally {
    await queue.close();
  }
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check this install: tfjs backend, onnxruntime, models, data directory, disk')
    .option('--json', 'print the report as JSON (the same object as GET /api/health)')
    .action(async (opts: { json?: boolean }) => {
      const report = await runDoctor();
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
      process.exitCode = report.ok ? 0 : 1;
    });
}
