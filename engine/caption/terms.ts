/**
 * Interrogation: CLIP reads an image against term lists kept as data (prompts/caption/*.json)
 * and keeps each category's best terms with their scores. A real CLIP model gets the general
 * lists (objects, scenes, colours, mediums, styles, lighting); the bundled demo CLIP gets its
 * own world's vocabulary (shapes, colours, backgrounds, sizes, positions, doodle subjects),
 * because it knows no other words.
 */
import { readFileSync } from 'node:fs';
import { worldVocabulary } from '../demo/world';
import { softmax } from '../scorer';

/** One category of terms, ready to put to CLIP. */
export interface TermCategory {
  name: string;
  terms: string[];
  /** What CLIP ranks for each term, e.g. "a photo of a dog". */
  prompts: string[];
  /** How each term reads inside a caption, e.g. "blue background". */
  labels: string[];
}

/** An offline caption template: `{category}` slots, optionally weighted by a `kind` term. */
export interface OfflineTemplate { text: string; kind?: string }

export interface TermSet {
  /** 'demo' for the bundled demo CLIP's world, 'general' for real models. */
  name: 'demo' | 'general';
  categories: TermCategory[];
  offline: OfflineTemplate[];
  /** Told to the LLM: which words the model knows ('' for real models). */
  llmHint: string;
}

/** One interrogated term: its category, how it reads, CLIP's softmax within the category. */
export interface TermScore {
  category: string;
  /** The term as it reads in a caption ("red", "blue background", "in the top left"). */
  text: string;
  /** The bare term, as offline templates use it ("blue"). */
  term: string;
  score: number;
}

interface CategoryFile { prompt: string; label?: string; terms?: string[]; source?: string }
interface TermFile {
  categories: Record<string, CategoryFile>;
  kinds?: Record<string, string>;
  offline: OfflineTemplate[];
  llmHint: string;
}

/** "a"/"an" + word, by the first letter (enough for these lists). */
export function withArticle(word: string): string {
  return `${/^[aeiou]/i.test(word) ? 'an' : 'a'} ${word}`;
}

const fill = (template: string, term: string) => template.replace(/\{a_term\}/g, withArticle(term)).replace(/\{term\}/g, term);

function readTermFile(name: string): TermFile {
  const path = new URL(`../../prompts/caption/${name}.json`, import.meta.url);
  const file = JSON.parse(readFileSync(path, 'utf8')) as TermFile;
  for (const [cat, c] of Object.entries(file.categories)) {
    if (typeof c.prompt !== 'string' || !c.prompt.includes('term}')) throw new Error(`prompts/caption/${name}.json: category "${cat}" needs a prompt with {term} or {a_term}.`);
  }
  for (const t of file.offline) {
    for (const [, slot] of t.text.matchAll(/\{(\w+)\}/g)) {
      if (!file.categories[slot!]) throw new Error(`prompts/caption/${name}.json: offline template "${t.text}" names no category "${slot}".`);
    }
  }
  return file;
}

const cache = new Map<string, TermSet>();

/**
 * The term lists for a model: the demo world's vocabulary for the bundled demo CLIP, the
 * general lists otherwise.
 *
 * @example
 * termSet(true).categories.map((c) => c.name); // ['kind', 'color', 'shape', 'background', …]
 */
export function termSet(demo: boolean): TermSet {
  const key = demo ? 'demo' : 'general';
  const hit = cache.get(key);
  if (hit) return hit;
  const file = readTermFile(demo ? 'demo' : 'terms');
  let set: TermSet;
  if (demo) {
    const vocab = worldVocabulary();
    // Positions read as the world's own phrases ("in the top left"), not grid cell names.
    const world = JSON.parse(readFileSync(new URL('../../prompts/demo/world.json', import.meta.url), 'utf8')) as { positions: Record<string, string[]> };
    const kinds = file.kinds ?? {};
    const sources: Record<string, string[]> = {
      ...vocab, kinds: Object.keys(kinds),
      positions: vocab.positions.map((cell) => world.positions[cell]?.[0] ?? `in the ${cell}`),
    } as unknown as Record<string, string[]>;
    const categories = Object.entries(file.categories).map(([name, c]) => {
      const terms = sources[c.source ?? ''];
      if (!terms?.length) throw new Error(`prompts/caption/demo.json: category "${name}" has no vocabulary source "${c.source}".`);
      const prompts = name === 'kind' ? terms.map((t) => kinds[t]!) : terms.map((t) => fill(c.prompt, t));
      return { name, terms: [...terms], prompts, labels: terms.map((t) => fill(c.label ?? '{term}', t)) };
    });
    set = { name: 'demo', categories, offline: file.offline, llmHint: file.llmHint.replace(/\{(\w+)\}/g, (m, k: string) => (sources[k] ? sources[k].join(', ') : m)) };
  } else {
    const categories = Object.entries(file.categories).map(([name, c]) => {
      const terms = c.terms ?? [];
      if (!terms.length) throw new Error(`prompts/caption/terms.json: category "${name}" has no terms.`);
      return { name, terms, prompts: terms.map((t) => fill(c.prompt, t)), labels: terms.map((t) => fill(c.label ?? '{term}', t)) };
    });
    set = { name: 'general', categories, offline: file.offline, llmHint: file.llmHint };
  }
  cache.set(key, set);
  return set;
}

/** Every prompt of every category, in order, for one batch through the text tower. */
export function allPrompts(set: TermSet): string[] {
  return set.categories.flatMap((c) => c.prompts);
}

/**
 * Turn CLIP's logits of one image against `allPrompts(set)` into each category's best terms:
 * a softmax within the category (the model's logit scale is already in the logits), the top
 * `perCategory` kept, best first within each category.
 */
export function termsFromLogits(set: TermSet, logits: ArrayLike<number>, perCategory: number): TermScore[] {
  const out: TermScore[] = [];
  let offset = 0;
  for (const c of set.categories) {
    const row = Array.from({ length: c.prompts.length }, (_, i) => logits[offset + i]!);
    offset += c.prompts.length;
    const p = softmax(row);
    const order = p.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0]).slice(0, perCategory);
    for (const [score, i] of order) out.push({ category: c.name, text: c.labels[i]!, term: c.terms[i]!, score });
  }
  return out;
}

/**
 * The interrogated terms a caption uses (whole words, case-insensitive), best first. Longer
 * terms claim their words first, so in "a blue circle on a red background" the "red" belongs
 * to "red background", not to the colour "red".
 */
export function supportingTerms(caption: string, terms: readonly TermScore[]): TermScore[] {
  let text = ` ${caption.toLowerCase().replace(/[^a-z0-9' -]+/g, ' ').replace(/\s+/g, ' ')} `;
  const found: TermScore[] = [];
  const byLength = terms.filter((t) => t.category !== 'kind').sort((a, b) => b.text.length - a.text.length);
  for (const t of byLength) {
    const needle = ` ${t.text.toLowerCase()} `;
    if (!text.includes(needle)) continue;
    found.push(t);
    text = text.replace(needle, ' | ');
  }
  return found.sort((a, b) => b.score - a.score);
}
