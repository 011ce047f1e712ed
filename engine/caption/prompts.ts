/**
 * The LLM's messages, from the templates in prompts/caption/llm.json: propose (terms in,
 * candidate captions out) and refine (the best captions so far in, variations out), with the
 * image attached for models that accept images.
 */
import { readFileSync } from 'node:fs';
import type { ChatMessage } from './llm';
import type { TermScore } from './terms';

interface LlmTemplates { system: string; propose: string; refine: string }

let templates: LlmTemplates | undefined;

function load(): LlmTemplates {
  if (templates) return templates;
  const t = JSON.parse(readFileSync(new URL('../../prompts/caption/llm.json', import.meta.url), 'utf8')) as LlmTemplates;
  for (const k of ['system', 'propose', 'refine'] as const) {
    if (typeof t[k] !== 'string' || !t[k]) throw new Error(`prompts/caption/llm.json: "${k}" must be a template string.`);
  }
  templates = t;
  return t;
}

const pct = (s: number) => `${Math.round(s * 100)}%`;

/** "color: red 91%, orange 6%, purple 2%" per category, one a line. */
export function formatTerms(terms: readonly TermScore[]): string {
  const cats = new Map<string, TermScore[]>();
  for (const t of terms) cats.set(t.category, [...(cats.get(t.category) ?? []), t]);
  return [...cats].map(([c, list]) => `- ${c}: ${list.map((t) => `${t.text} ${pct(t.score)}`).join(', ')}`).join('\n');
}

function fill(template: string, slots: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => slots[k] ?? m);
}

function userMessage(text: string, image?: { mime: string; data: Buffer }): ChatMessage {
  if (!image) return { role: 'user', content: text };
  return { role: 'user', content: [{ type: 'text', text }, { type: 'image_url', image_url: { url: `data:${image.mime};base64,${image.data.toString('base64')}` } }] };
}

export interface PromptContext {
  terms: readonly TermScore[];
  /** What the model knows (the demo world's words), '' for real models. */
  hint: string;
  n: number;
  image?: { mime: string; data: Buffer };
}

/** The messages asking for `n` first candidates. */
export function proposeMessages(ctx: PromptContext): ChatMessage[] {
  const t = load();
  const slots = { n: String(ctx.n), terms: formatTerms(ctx.terms), hint: ctx.hint ? `\n${ctx.hint}\n` : '' };
  return [{ role: 'system', content: t.system }, userMessage(fill(t.propose, slots), ctx.image)];
}

/** The messages asking for `n` variations of `best` (text and score, best first). */
export function refineMessages(ctx: PromptContext & { best: readonly { text: string; score: number }[] }): ChatMessage[] {
  const t = load();
  const slots = {
    n: String(ctx.n), terms: formatTerms(ctx.terms), hint: ctx.hint ? `\n${ctx.hint}\n` : '',
    captions: ctx.best.map((b, i) => `${i + 1}. ${b.text} (${pct(b.score)})`).join('\n'),
  };
  return [{ role: 'system', content: t.system }, userMessage(fill(t.refine, slots), ctx.image)];
}
