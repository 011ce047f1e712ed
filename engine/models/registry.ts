/**
 * The model registry: which models exist (`models/<id>/model.json` manifests), which are
 * installed, where their files are, whether their bytes are the right ones, and fetching them.
 *
 * Manifests and their schema: ./manifest.ts.
 *
 * Fetched models live in `<dataDir>/models/<id>/` (dataDir: the caller's CLIP_STUDIO_DATA,
 * default ./data); bundled ones in `<modelsDir>/<id>/`. The first download of each file records
 * its sha256 in `.checksums.json` beside it, so `verifyModel` can check files no manifest pins.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DownloadError, ModelLoadError } from '../errors';
import { downloadFile, hfResolveUrl, type ChecksumSource, type DownloadProgress } from '../io/download';
import { loadManifests, parseManifest, type ModelFamily, type ModelFileSpec, type ModelManifest } from './manifest';

export { parseManifest, type ModelFamily, type ModelFileSpec, type ModelManifest };

export type ModelStatus = 'installed' | 'partial' | 'missing';

/** Where the registry looks: manifests under `modelsDir`, fetched files under `dataDir/models`. */
export interface RegistryOptions {
  /** Directory of `<id>/model.json` manifests. Default: the repo's `models/`. */
  modelsDir?: string;
  /** The data directory (CLIP_STUDIO_DATA). Default: `./data`. */
  dataDir?: string;
  /** Where fetched models live (the server config's CLIP_STUDIO_MODELS). Default: `<dataDir>/models`. */
  installDir?: string;
}

export interface ModelFileState {
  path: string;
  required: boolean;
  alternativeTo?: string;
  present: boolean;
  /** Bytes on disk, or null when absent. */
  size: number | null;
  expectedSize?: number;
}

export interface ModelEntry {
  id: string;
  family: ModelFamily;
  title: string;
  bundled: boolean;
  status: ModelStatus;
  /** Where the model's files are (or will be, once fetched). */
  dir: string;
  files: ModelFileState[];
  /** Bytes on disk over all present files. */
  sizeOnDisk: number;
  /** Sum of the sizes the manifest gives for required files (a lower bound when some are not
   * given), or null when none is. */
  expectedSize: number | null;
  manifest: ModelManifest;
}

/** One entry of `.checksums.json`: what the first download of a file measured. */
export interface RecordedChecksum {
  sha256: string;
  size: number;
  source: ChecksumSource;
  url: string;
  recordedAt: string;
}

const CHECKSUMS_FILE = '.checksums.json';
const DEFAULT_MODELS_DIR = resolve(new URL('../../models', import.meta.url).pathname);

function dirs(opts: RegistryOptions = {}): { modelsDir: string; installDir: string } {
  return { modelsDir: resolve(opts.modelsDir ?? DEFAULT_MODELS_DIR),
    installDir: resolve(opts.installDir ?? join(opts.dataDir ?? 'data', 'models')) };
}

function modelDir(m: ModelManifest, opts: RegistryOptions): string {
  const { modelsDir, installDir } = dirs(opts);
  return m.bundled ? join(modelsDir, m.id) : join(installDir, m.id);
}

function entryOf(m: ModelManifest, opts: RegistryOptions): ModelEntry {
  const dir = modelDir(m, opts);
  const files: ModelFileState[] = m.files.map((f) => {
    const p = join(dir, f.path);
    const st = existsSync(p) ? statSync(p) : undefined;
    const present = !!st?.isFile();
    return { path: f.path, required: f.required, alternativeTo: f.alternativeTo, present,
      size: present ? st!.size : null, expectedSize: f.size };
  });
  const satisfied = (f: ModelFileState) => f.present || files.some((a) => a.alternativeTo === f.path && a.present);
  const required = files.filter((f) => f.required);
  const anyOnDisk = files.some((f) => f.present) || files.some((f) => existsSync(join(dir, `${f.path}.part`)));
  const status: ModelStatus = required.every(satisfied) ? 'installed' : anyOnDisk ? 'partial' : 'missing';
  const sizes = m.files.filter((f) => f.required).map((f) => f.size);
  return {
    id: m.id, family: m.family, title: m.title, bundled: !!m.bundled, status, dir, files,
    sizeOnDisk: files.reduce((s, f) => s + (f.size ?? 0), 0),
    expectedSize: sizes.some((s) => s !== undefined) ? sizes.reduce<number>((s, n) => s + (n ?? 0), 0) : null,
    manifest: m,
  };
}

/**
 * Every model the manifests describe, with its install status and where its files live.
 *
 * @example
 * for (const m of listModels()) console.log(m.id, m.status, m.dir);
 */
export function listModels(opts: RegistryOptions = {}): ModelEntry[] {
  return loadManifests(dirs(opts).modelsDir).map((m) => entryOf(m, opts));
}

/** The entry of one model; an unknown id throws ModelLoadError listing the known ones. */
export function getModel(id: string, opts: RegistryOptions = {}): ModelEntry {
  const all = listModels(opts);
  const e = all.find((m) => m.id === id);
  if (!e) throw new ModelLoadError(`Unknown model "${id}". Known models: ${all.map((m) => m.id).join(', ') || '(none)'}`);
  return e;
}

export interface ResolvedModel {
  id: string;
  family: ModelFamily;
  dir: string;
  /** Manifest path → absolute path, for every file present on disk. */
  files: Record<string, string>;
  manifest: ModelManifest;
}

/**
 * The paths of an installed model's files, or a ModelLoadError that says how to install it.
 *
 * @example
 * const clip = resolveModel('clip-vit-base-patch32');
 * clip.files['model.safetensors']; // '/…/data/models/clip-vit-base-patch32/model.safetensors'
 */
export function resolveModel(id: string, opts: RegistryOptions = {}): ResolvedModel {
  const e = getModel(id, opts);
  if (e.status !== 'installed') {
    const missing = e.files.filter((f) => f.required && !f.present).map((f) => f.path);
    throw new ModelLoadError(e.bundled
      ? `Bundled model ${id} is incomplete: ${missing.join(', ')} missing from ${e.dir}`
      : `Model ${id} is not installed${e.status === 'partial' ? ` (missing ${missing.join(', ')})` : ''}; run \`clip-studio models fetch ${id}\``);
  }
  const files = Object.fromEntries(e.files.filter((f) => f.present).map((f) => [f.path, join(e.dir, f.path)]));
  return { id, family: e.family, dir: e.dir, files, manifest: e.manifest };
}

export interface DefaultModel {
  id: string;
  /** Why this one: a real installed model, or the bundled demo as a fallback. */
  reason: string;
  model: ResolvedModel;
}

/**
 * The model of a family to use when none is named: the first installed real model (by
 * manifest `preference`), else the bundled demo model; throws when neither is there.
 *
 * @example
 * const { id, reason } = defaultModel('clip'); // 'demo-clip', 'no downloaded clip model is installed; …'
 */
export function defaultModel(family: ModelFamily, opts: RegistryOptions = {}): DefaultModel {
  const ofFamily = listModels(opts).filter((m) => m.family === family);
  const real = ofFamily.find((m) => !m.bundled && m.status === 'installed');
  if (real) return { id: real.id, reason: `${real.id} is the preferred installed ${family} model`, model: resolveModel(real.id, opts) };
  const suggestion = ofFamily.find((m) => !m.bundled)?.id;
  const fetchHint = suggestion ? `; run \`clip-studio models fetch ${suggestion}\` for a real one` : '';
  const demo = ofFamily.find((m) => m.bundled && m.status === 'installed');
  if (demo) {
    return { id: demo.id, reason: `no downloaded ${family} model is installed, so the bundled demo model ${demo.id} is used${fetchHint}`,
      model: resolveModel(demo.id, opts) };
  }
  throw new ModelLoadError(`No ${family} model is installed and no bundled demo model is present${fetchHint}`);
}

function readChecksums(dir: string): Record<string, RecordedChecksum> {
  const p = join(dir, CHECKSUMS_FILE);
  if (!existsSync(p)) return {};
  try {
    return (JSON.parse(readFileSync(p, 'utf8')) as { files?: Record<string, RecordedChecksum> }).files ?? {};
  } catch (err) {
    throw new ModelLoadError(`${p} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

async function recordChecksum(dir: string, path: string, rec: RecordedChecksum): Promise<void> {
  const files = { ...readChecksums(dir), [path]: rec };
  const p = join(dir, CHECKSUMS_FILE);
  await writeFile(`${p}.tmp`, `${JSON.stringify({ files }, null, 2)}\n`);
  await rename(`${p}.tmp`, p);
}

export interface FileVerification {
  path: string;
  required: boolean;
  present: boolean;
  size: number | null;
  expectedSize?: number;
  sha256: string | null;
  expected: string | null;
  expectedFrom: 'manifest' | 'recorded' | null;
  /** ok: bytes match; mismatch: sha256 or size differ; missing: a required file is absent;
   * absent: an optional file is absent; unchecked: present, but no checksum to compare with. */
  status: 'ok' | 'mismatch' | 'missing' | 'absent' | 'unchecked';
}

export interface ModelVerification {
  id: string;
  dir: string;
  /** True when no file mismatches and the model is installed. */
  ok: boolean;
  files: FileVerification[];
}

/**
 * Hash every present file of a model (streamed) and compare with the manifest's sha256, or the
 * one recorded at first download.
 *
 * @example
 * const v = await verifyModel('clip-vit-base-patch32');
 * if (!v.ok) console.error(v.files.filter((f) => f.status === 'mismatch'));
 */
export async function verifyModel(id: string, opts: RegistryOptions = {}): Promise<ModelVerification> {
  const e = getModel(id, opts);
  const recorded = readChecksums(e.dir);
  const files: FileVerification[] = [];
  for (const spec of e.manifest.files) {
    const state = e.files.find((f) => f.path === spec.path)!;
    const expected = spec.sha256 ?? recorded[spec.path]?.sha256 ?? null;
    const expectedFrom = spec.sha256 ? 'manifest' : recorded[spec.path] ? 'recorded' : null;
    const base = { path: spec.path, required: spec.required, present: state.present, size: state.size,
      expectedSize: spec.size, expected, expectedFrom } as const;
    if (!state.present) {
      const covered = e.files.some((a) => a.alternativeTo === spec.path && a.present);
      files.push({ ...base, sha256: null, status: spec.required && !covered ? 'missing' : 'absent' });
      continue;
    }
    const sha256 = await sha256File(join(e.dir, spec.path));
    const sizeBad = spec.size !== undefined && spec.size !== state.size;
    files.push({ ...base, sha256, status: sizeBad || (expected !== null && expected !== sha256) ? 'mismatch' : expected ? 'ok' : 'unchecked' });
  }
  return { id, dir: e.dir, ok: e.status === 'installed' && !files.some((f) => f.status === 'mismatch'), files };
}

/** The sha256 of a file, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface FetchOptions extends RegistryOptions {
  /** Hub base URL (the caller's HF_ENDPOINT). Default https://huggingface.co. */
  hfEndpoint?: string;
  /** Hub token (the caller's HF_TOKEN); sent only to the hub, never logged. */
  hfToken?: string;
  /** Download again even when the files are present. */
  force?: boolean;
  onProgress?: (p: DownloadProgress & { file: string }) => void;
  signal?: AbortSignal;
  retries?: number;
  retryDelayMs?: number;
}

export interface FetchedFile {
  path: string;
  /** downloaded now, or already present (not downloaded again). */
  action: 'downloaded' | 'present';
  sha256?: string;
  checksumSource?: ChecksumSource;
}

export interface FetchResult {
  id: string;
  dir: string;
  files: FetchedFile[];
}

/**
 * Download a model's required files into `<dataDir>/models/<id>/`, resuming partial files,
 * verifying checksums, trying mirrors, and falling back to a listed alternative file (e.g.
 * `pytorch_model.bin` for `model.safetensors`) when a file is not found.
 *
 * @example
 * await fetchModel('clip-vit-base-patch32', { dataDir: 'data', hfToken: env.HF_TOKEN,
 *   onProgress: (p) => console.error(p.file, p.received, p.total) });
 */
export async function fetchModel(id: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const e = getModel(id, opts);
  const m = e.manifest;
  if (m.bundled) return { id, dir: e.dir, files: e.files.map((f) => ({ path: f.path, action: 'present' })) };
  await mkdir(e.dir, { recursive: true });
  const out: FetchedFile[] = [];
  for (const spec of m.files.filter((f) => f.required)) {
    const alternatives = m.files.filter((f) => f.alternativeTo === spec.path);
    const present = [spec, ...alternatives].find((f) => e.files.find((s) => s.path === f.path)?.present);
    if (present && !opts.force) {
      out.push({ path: present.path, action: 'present' });
      continue;
    }
    // A 404 moves on to the next alternative; any other failure stops here.
    let error: unknown;
    for (const candidate of [spec, ...alternatives]) {
      try {
        out.push(await fetchFile(m, candidate, e.dir, opts));
        error = undefined;
        break;
      } catch (err) {
        const notFound = err instanceof DownloadError && err.status === 404;
        if (!error || !notFound) error = err;
        if (!notFound) break;
      }
    }
    if (error) throw error;
  }
  return { id, dir: e.dir, files: out };
}

async function fetchFile(m: ModelManifest, f: ModelFileSpec, dir: string, opts: FetchOptions): Promise<FetchedFile> {
  const src = m.source;
  const hub = src?.kind === 'huggingface';
  const urls = [f.url ?? (hub ? hfResolveUrl(opts.hfEndpoint ?? 'https://huggingface.co', src.repo, src.revision, f.path) : undefined),
    ...(f.mirrors ?? [])].filter((u): u is string => !!u);
  const recorded = readChecksums(dir)[f.path];
  let lastError: unknown;
  for (const url of urls) {
    const toHub = hub && !f.url && url === urls[0];
    try {
      const r = await downloadFile({
        url, dest: join(dir, f.path), expectedSha256: f.sha256 ?? recorded?.sha256,
        headers: toHub && opts.hfToken ? { Authorization: `Bearer ${opts.hfToken}` } : undefined,
        onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, file: f.path })),
        signal: opts.signal, retries: opts.retries, retryDelayMs: opts.retryDelayMs,
      });
      if (f.size !== undefined && r.size !== f.size) {
        await rm(r.path, { force: true });
        throw new DownloadError(`${url} gave ${r.size} bytes for ${f.path}, but the manifest says ${f.size}`);
      }
      const source: ChecksumSource = f.sha256 ? 'pinned' : recorded ? recorded.source : r.checksumSource;
      await recordChecksum(dir, f.path, { sha256: r.sha256, size: r.size, source, url, recordedAt: new Date().toISOString() });
      return { path: f.path, action: 'downloaded', sha256: r.sha256, checksumSource: r.checksumSource };
    } catch (err) {
      lastError = err;
      if (!(err instanceof DownloadError) || err.message.includes('No space left')) throw err;
    }
  }
  throw lastError ?? new ModelLoadError(`Model ${m.id} has no URL for ${f.path}`);
}
