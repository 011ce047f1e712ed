/**
 * Print captioning's quality figures with the bundled demo CLIP (engine/caption/eval.ts): the
 * right caption first among ten LLM candidates on 40 held-out renders, and the offline
 * generator's colour and shape on 40 held-out single-shape scenes. The "LLM" is a local
 * OpenAI-compatible server (test/helpers/llm-server.ts) answering with the candidates of the
 * image at hand, reached over real HTTP through the `openai` package.
 *
 *   npx tsx scripts/caption-eval.ts [--n 40] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaptionLlm, ClipScorer } from '../engine/index';
import { evaluateLlmRanking, evaluateOffline, formatCaptionFigures } from '../engine/caption/eval';
import { chatAnswer, startLlmServer } from '../test/helpers/llm-server';

export async function runCaptionEval(n = 40) {
  const dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-caption-eval-'));
  let answer: string[] = [];
  const server = await startLlmServer(() => chatAnswer(JSON.stringify(answer)));
  const scorer = await ClipScorer.open({ model: 'demo-clip', dataDir });
  try {
    const llm = new CaptionLlm({ baseUrl: server.baseUrl, apiKey: 'eval', model: 'eval-llm', timeoutMs: 10_000 });
    const t0 = performance.now();
    const figures = [await evaluateLlmRanking(scorer, llm, (c) => { answer = c; }, { n }), ...await evaluateOffline(scorer, { n })];
    return { model: scorer.model.id, figures, seconds: (performance.now() - t0) / 1000, requests: server.requests.length };
  } finally {
    await scorer.close();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const i = process.argv.indexOf('--n');
  const n = i > 0 ? Number(process.argv[i + 1]) : 40;
  const r = await runCaptionEval(n);
  if (process.argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
  else console.log(`model ${r.model}, ${r.requests} LLM requests, ${r.seconds.toFixed(1)} s\n${formatCaptionFigures(r.figures)}`);
}
