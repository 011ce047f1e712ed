/**
 * Prompt packs: data files in prompts/game/, one per model family (the demo pack for the
 * bundled demo CLIP, one for OpenAI's CLIPs). Each lists the prompts a round can pick (the
 * CLIP text and the label players see), penalty prompts that catch writing the prompt instead of
 * drawing it, and moderation prompts. Loaded and checked once; a bad file is an error naming the
 * file and the field.
 *
 * @example
 * const packs = packsForModel(loadPacks(), 'demo-clip'); // [{ id: 'demo-doodles', … }]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export const DEFAULT_PACKS_DIR = new URL('../../prompts/game/', import.meta.url).pathname;

const PackSchema = z.object({
  $comment: z.string().optional(),
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, { error: 'must be an id such as demo-doodles' }),
  title: z.string().min(1).max(100),
  /** Registry ids of the CLIP models this pack is written for. */
  models: z.array(z.string().min(1)).min(1),
  prompts: z.array(z.object({
    /** What players see: "house". */
    label: z.string().min(1).max(40),
    /** What CLIP reads: "a drawing of a house". */
    text: z.string().min(1).max(200),
  })).min(2, { error: 'a pack needs at least 2 prompts (scores are a softmax over them)' }).max(1000),
  penalties: z.object({
    /** The score is multiplied by this when a penalty prompt outranks the round's prompt. */
    factor: z.number().min(0).max(1),
    /** `{label}` and `{text}` are replaced by the round's prompt. */
    prompts: z.array(z.string().min(1).max(200)).max(50),
  }).default({ factor: 0.5, prompts: [] }),
  moderation: z.object({ prompts: z.array(z.string().min(1).max(200)).max(50) }).default({ prompts: [] }),
});

export type GamePack = z.output<typeof PackSchema>;
export type GamePrompt = GamePack['prompts'][number];

/** Thrown for a pack file that does not parse or check. */
export class PackError extends Error {
  constructor(readonly file: string, readonly field: string, message: string) {
    super(`${file}: ${field}: ${message}`);
    this.name = 'PackError';
  }
}

/** Check one parsed pack file; `file` names it in errors. */
export function parsePack(raw: unknown, file: string): GamePack {
  const r = PackSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PackError(file, issue.path.length ? issue.path.map(String).join('.') : '(file)', issue.message);
  }
  const pack = r.data;
  for (const key of ['label', 'text'] as const) {
    const seen = new Set<string>();
    pack.prompts.forEach((p, i) => {
      const k = p[key].toLowerCase();
      if (seen.has(k)) throw new PackError(file, `prompts.${i}.${key}`, `"${p[key]}" appears twice`);
      seen.add(k);
    });
  }
  pack.penalties.prompts.forEach((p, i) => {
    const unknown = [...p.matchAll(/\{(\w*)\}/g)].map((m) => m[1]).find((k) => k !== 'label' && k !== 'text');
    if (unknown !== undefined) throw new PackError(file, `penalties.prompts.${i}`, `unknown placeholder {${unknown}} (use {label} or {text})`);
  });
  return pack;
}

/** Every pack in `dir` (default prompts/game/); pack ids must be unique. */
export function loadPacks(dir = DEFAULT_PACKS_DIR): GamePack[] {
  const packs: GamePack[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const file = join(dir, name);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new PackError(file, '(file)', `not valid JSON (${(cause as Error).message})`);
    }
    const pack = parsePack(raw, file);
    if (packs.some((p) => p.id === pack.id)) throw new PackError(file, 'id', `the pack id "${pack.id}" is used by another file`);
    packs.push(pack);
  }
  return packs;
}

/** The packs written for `modelId`. */
export function packsForModel(packs: readonly GamePack[], modelId: string): GamePack[] {
  return packs.filter((p) => p.models.includes(modelId));
}

/** A penalty prompt with the round's prompt filled in. */
export function fillPenalty(template: string, prompt: GamePrompt): string {
  return template.replace(/\{label\}/g, prompt.label).replace(/\{text\}/g, prompt.text);
}
