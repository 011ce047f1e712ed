/**
 * Model manifests, `models/<id>/model.json`: their schema (zod) and loading; registry.ts uses them.
 *
 * Manifest schema (config is data; validated by `manifestSchema` below):
 *
 *   {
 *     "id": "clip-vit-base-patch32",            // = its directory name
 *     "family": "clip" | "vqgan",
 *     "title": "CLIP ViT-B/32 (OpenAI)",
 *     "preference": 1,                           // optional; lower is picked first by defaultModel
 *     "bundled": true,                           // optional; files live in the repo under models/<id>/
 *     "source": { "kind": "huggingface", "repo": "openai/clip-vit-base-patch32",
 *                 "revision": "<40-hex commit>" | "main", "unpinned": true }  // unpinned: needed for a branch
 *             | { "kind": "url" },                // every file then has its own url
 *                                                // (no source for a bundled model)
 *     "files": [{ "path": "model.safetensors", "required": true,
 *                 "url"?: "https://…", "mirrors"?: ["https://…"],
 *                 "sha256"?: "<64 hex>", "size"?: 605157884,
 *                 "alternativeTo"?: "model.safetensors" }],   // may stand in for that file
 *     "license": "MIT", "notes": "…"
 *   }
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ModelLoadError } from '../errors';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
const relPath = z.string().min(1).refine((p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..'),
  'must be a relative path inside the model directory');

const fileSchema = z.object({
  path: relPath,
  required: z.boolean(),
  url: z.url().optional(),
  mirrors: z.array(z.url()).optional(),
  sha256: sha256Hex.optional(),
  size: z.number().int().nonnegative().optional(),
  alternativeTo: z.string().optional(),
});

const sourceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('huggingface'), repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must be "owner/name"'),
    revision: z.string().min(1), unpinned: z.boolean().optional() }),
  z.object({ kind: z.literal('url') }),
]);

const manifestSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-"'),
  family: z.enum(['clip', 'vqgan']),
  title: z.string().min(1),
  preference: z.number().optional(),
  bundled: z.boolean().optional(),
  source: sourceSchema.optional(),
  files: z.array(fileSchema).min(1),
  license: z.string().min(1),
  notes: z.string().default(''),
}).superRefine((m, ctx) => {
  if (!m.bundled && !m.source) ctx.addIssue({ code: 'custom', path: ['source'], message: 'is required unless "bundled" is true' });
  const src = m.source;
  if (src?.kind === 'huggingface' && !/^[0-9a-f]{40}$/.test(src.revision) && !src.unpinned) {
    ctx.addIssue({ code: 'custom', path: ['source', 'revision'], message: `"${src.revision}" is not a 40-hex commit; pin one, or mark the branch with "unpinned": true` });
  }
  const paths = new Set(m.files.map((f) => f.path));
  m.files.forEach((f, i) => {
    if (f.alternativeTo !== undefined && !paths.has(f.alternativeTo)) {
      ctx.addIssue({ code: 'custom', path: ['files', i, 'alternativeTo'], message: `names "${f.alternativeTo}", which is not in files` });
    }
    if (!m.bundled && src?.kind === 'url' && !f.url) ctx.addIssue({ code: 'custom', path: ['files', i, 'url'], message: 'is required when source.kind is "url"' });
  });
});

export type ModelManifest = z.infer<typeof manifestSchema>;
export type ModelFamily = ModelManifest['family'];
export type ModelFileSpec = ModelManifest['files'][number];
/** Parse and validate one manifest; the error names the file and every bad field. */
export function parseManifest(json: unknown, where: string): ModelManifest {
  const r = manifestSchema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `\`${i.path.join('.') || '(root)'}\` ${i.message}`).join('; ');
    throw new ModelLoadError(`${where} is not a valid model manifest: ${issues}`);
  }
  return r.data;
}

/** Every manifest under `modelsDir`, sorted by family, real before bundled, preference, id. */
export function loadManifests(modelsDir: string): ModelManifest[] {
  if (!existsSync(modelsDir)) return [];
  const out: ModelManifest[] = [];
  for (const name of readdirSync(modelsDir).sort()) {
    const file = join(modelsDir, name, 'model.json');
    if (!existsSync(file)) continue; // models/ also holds data that is not a model (clip-bpe)
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ModelLoadError(`${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    const m = parseManifest(json, file);
    if (m.id !== name) throw new ModelLoadError(`${file} has id "${m.id}", but it must equal its directory name "${name}"`);
    out.push(m);
  }
  return out.sort((a, b) => a.family.localeCompare(b.family) || Number(!!a.bundled) - Number(!!b.bundled)
    || (a.preference ?? 100) - (b.preference ?? 100) || a.id.localeCompare(b.id));
}

