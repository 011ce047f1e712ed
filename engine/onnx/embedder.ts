/**
 * CLIP inference on onnxruntime: image and text embeddings for everything that needs no
 * gradient (classifying, ranking captions, scoring drawings, live guesses). tfjs keeps the
 * gradient work (generation, training).
 *
 * Requests are micro-batched: calls arriving within a few milliseconds of each other run as
 * one batch (a GEMM over more rows runs nearer the machine's peak), and one run goes at a
 * time, so concurrent callers queue behind the cores instead of fighting over them. Text
 * embeddings are remembered in an LRU (and optionally a persistent store, text-cache.ts),
 * keyed by the model and the tokens up to the end token.
 *
 * Sources: a config + state dict (graphs built by clip-onnx.ts, cached on disk by cache.ts when
 * a data directory is given), or a user's pair of standard CLIP exports (vision_model.onnx,
 * text_model.onnx, as Hugging Face / transformers.js name their inputs and outputs).
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError, ModelLoadError, ShapeError } from '../errors';
import type { StateDict } from '../io/host-tensor';
import { findClipFiles, readClipStateDict } from '../models/clip-weights';
import { readClipConfig, type ClipConfig } from '../models/config';
import { createOrtSession, type OrtIoInfo, type OrtSession, type OrtSessionOptions, type OrtValue } from '../runtime/onnx';
import { clipOnnxFiles } from './cache';
import { buildClipTextOnnx, buildClipVisionOnnx, TEXT_INPUT, TEXT_OUTPUT, VISION_INPUT, VISION_OUTPUT, type ClipOnnxPrecision } from './clip-onnx';
import { LruCache, type TextEmbeddingStore } from './text-cache';

export interface OrtClipEmbedderOptions extends Pick<OrtSessionOptions, 'provider' | 'threads' | 'spin'> {
  /** How long the first request of a batch waits for company, in ms (default 3). */
  windowMs?: number;
  /** Most rows in one run (default 32); a single larger request still runs whole. */
  maxBatch?: number;
  /** Text embeddings kept in memory (default 4096; 0 turns the cache off). */
  textCacheSize?: number;
  /** A persistent store behind the in-memory LRU (the server's: server/store/text-embeddings.ts). */
  textStore?: TextEmbeddingStore;
  /**
   * `int8`: the vision tower's projections with int8 weights and dynamically quantised
   * activations (clip-onnx.ts, onnxruntime's DynamicQuantizeMatMul) — faster on the CPU, and
   * close to fp32 but not equal (bench/quantize.ts measures both). Graphs built from weights
   * only; the text tower stays fp32. Default `fp32`.
   */
  visionPrecision?: ClipOnnxPrecision;
}

/** What the embedder knows about its model. */
export interface OrtClipInfo {
  imageSize: number;
  channels: number;
  embedDim: number;
  /** The text tower's context length (77 for CLIP). */
  contextLength: number;
  /** exp(logit_scale): the factor CLIP's logits apply to cosine similarities. */
  logitScale: number;
  /** Identifies the weights (text cache entries are per model). */
  modelKey: string;
  /** The vision graph's precision. */
  visionPrecision: ClipOnnxPrecision;
}

export interface OrtClipStats {
  imageRuns: number;
  imageRows: number;
  textRuns: number;
  textRows: number;
  textCacheHits: number;
}

/** Serialises runs: one ORT run at a time uses every core; two would only contend. */
class RunLock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

interface Pending<D> {
  data: D;
  rows: number;
  resolve: (out: Float32Array) => void;
  reject: (err: unknown) => void;
}

/**
 * Collects requests of `rowSize` values per row for up to `windowMs`, then runs them as one
 * batch of at most `maxBatch` rows (under the shared lock) and hands each caller its rows.
 */
class MicroBatcher<D extends Float32Array | BigInt64Array> {
  private queue: Pending<D>[] = [];
  private queuedRows = 0;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  constructor(
    private readonly lock: RunLock,
    private readonly rowSize: number,
    private readonly make: (n: number) => D,
    private readonly runBatch: (data: D, rows: number) => Promise<{ data: Float32Array; width: number }>,
    private readonly windowMs: number,
    private readonly maxBatch: number,
  ) {}

  submit(data: D, rows: number): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.queue.push({ data, rows, resolve, reject });
      this.queuedRows += rows;
      this.schedule(this.queuedRows >= this.maxBatch ? 0 : this.windowMs);
    });
  }

  private schedule(delay: number): void {
    if (this.scheduled && !(delay === 0 && this.timer)) return;
    if (this.timer) clearTimeout(this.timer);
    this.scheduled = true;
    const go = () => {
      this.timer = undefined;
      void this.lock.run(() => this.drain()).finally(() => {
        this.scheduled = false;
        // Whatever queued during the run has waited long enough already.
        if (this.queue.length) this.schedule(0);
      });
    };
    if (delay > 0) this.timer = setTimeout(go, delay);
    else go();
  }

  /** Run the requests at the head of the queue (taken now, under the lock, so late arrivals join). */
  private async drain(): Promise<void> {
    const batch: Pending<D>[] = [];
    let rows = 0;
    while (this.queue.length && (batch.length === 0 || rows + this.queue[0]!.rows <= this.maxBatch)) {
      const p = this.queue.shift()!;
      batch.push(p);
      rows += p.rows;
    }
    this.queuedRows -= rows;
    if (!batch.length) return;
    try {
      let input: D;
      if (batch.length === 1) input = batch[0]!.data;
      else {
        input = this.make(rows * this.rowSize);
        let at = 0;
        for (const p of batch) {
          (input as Float32Array).set(p.data as Float32Array, at);
          at += p.data.length;
        }
      }
      const { data, width } = await this.runBatch(input, rows);
      let row = 0;
      for (const p of batch) {
        p.resolve(data.slice(row * width, (row + p.rows) * width));
        row += p.rows;
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }
}

function sessionOptions(opts: OrtClipEmbedderOptions): OrtSessionOptions {
  return { ...(opts.provider ? { provider: opts.provider } : {}), ...(opts.threads ? { threads: opts.threads } : {}), ...(opts.spin !== undefined ? { spin: opts.spin } : {}) };
}

function sha256Text(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function describe(io: OrtIoInfo[]): string {
  return io.length ? io.map((i) => `${i.name}${i.type ? ` (${i.type}${i.shape ? ` [${i.shape.join(', ')}]` : ''})` : ''}`).join(', ') : 'none';
}

/**
 * CLIP image and text embeddings on onnxruntime, micro-batched, with a text-embedding cache.
 *
 * @example
 * const embedder = await OrtClipEmbedder.fromWeights({ config, tensors, dataDir: 'data' });
 * const img = await embedder.embedImages(pixelValues, 1);        // [1, E], pixelValues (x − mean)/std, NCHW
 * const txt = await embedder.embedTexts(ids, 3);                 // [3, E], ids from ClipTokenizer
 * const logits = embedder.logits(img, 1, txt, 3);                // [1, 3]
 */
export class OrtClipEmbedder {
  readonly stats: OrtClipStats = { imageRuns: 0, imageRows: 0, textRuns: 0, textRows: 0, textCacheHits: 0 };
  private readonly lock = new RunLock();
  private readonly images: MicroBatcher<Float32Array>;
  private readonly texts = new Map<number, MicroBatcher<BigInt64Array>>();
  private readonly lru: LruCache<Float32Array>;
  private readonly textIdsType: 'int64' | 'int32';
  private readonly attentionMask: boolean;
  private closed = false;

  private constructor(
    private readonly vision: OrtSession,
    private readonly text: OrtSession,
    readonly info: OrtClipInfo,
    private readonly opts: OrtClipEmbedderOptions,
  ) {
    const windowMs = opts.windowMs ?? 3;
    const maxBatch = opts.maxBatch ?? 32;
    if (!(windowMs >= 0)) throw new InputError('windowMs', `The \`windowMs\` option must be 0 or more, got ${windowMs}`);
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new InputError('maxBatch', `The \`maxBatch\` option must be an integer of 1 or more, got ${maxBatch}`);
    const { channels: C, imageSize: R } = info;
    this.images = new MicroBatcher(this.lock, C * R * R, (n): Float32Array => new Float32Array(n), async (data, rows) => {
      const out = await this.vision.run({ [VISION_INPUT]: { type: 'float32', data, dims: [rows, C, R, R] } }, [VISION_OUTPUT]);
      this.stats.imageRuns++;
      this.stats.imageRows += rows;
      return this.rowsOf(out[VISION_OUTPUT]!, rows);
    }, windowMs, maxBatch);
    this.lru = new LruCache(opts.textCacheSize ?? 4096);
    const idsInfo = text.inputs.find((i) => i.name === TEXT_INPUT);
    this.textIdsType = idsInfo?.type === 'int32' ? 'int32' : 'int64';
    this.attentionMask = text.inputs.some((i) => i.name === 'attention_mask');
  }

  /** Which provider the sessions run on (`cpu`, `cuda` or `webgpu`) and with how many threads. */
  get runtime(): { provider: string; threads: number } {
    return { provider: this.vision.provider, threads: this.vision.threads };
  }

  /**
   * Build (or take from the disk cache under `dataDir`) the ONNX graphs of a CLIP model and
   * open them. Without `dataDir` the graphs are built in memory every time.
   */
  static async fromWeights(
    src: { config: ClipConfig; tensors: StateDict; dataDir?: string; weightsSha256?: string },
    opts: OrtClipEmbedderOptions = {},
  ): Promise<OrtClipEmbedder> {
    const { config, tensors } = src;
    let vision: string | Uint8Array;
    let text: string | Uint8Array;
    let modelKey: string;
    const visionPrecision = opts.visionPrecision ?? 'fp32';
    if (visionPrecision !== 'fp32' && visionPrecision !== 'int8') {
      throw new InputError('visionPrecision', `The \`visionPrecision\` option must be fp32 or int8, got ${String(visionPrecision)}`);
    }
    if (src.dataDir) {
      const files = clipOnnxFiles({ dataDir: src.dataDir, config, tensors, visionPrecision, ...(src.weightsSha256 ? { weightsSha256: src.weightsSha256 } : {}) });
      [vision, text, modelKey] = [files.visionPath, files.textPath, files.key];
    } else {
      vision = buildClipVisionOnnx(config, tensors, { precision: visionPrecision });
      text = buildClipTextOnnx(config, tensors, { check: false });
      // No cache directory: key the text cache by the text graph's bytes.
      modelKey = createHash('sha256').update(text).digest('hex');
    }
    const sessionOpts = sessionOptions(opts);
    const v = await createOrtSession(vision, { ...sessionOpts, source: 'the CLIP vision graph' });
    const t = await createOrtSession(text, { ...sessionOpts, source: 'the CLIP text graph' }).catch(async (err: unknown) => {
      await v.release();
      throw err;
    });
    const scale = tensors.get('logit_scale')?.data[0];
    return new OrtClipEmbedder(v, t, {
      imageSize: config.vision.imageSize,
      channels: config.vision.numChannels,
      embedDim: config.projectionDim,
      contextLength: config.text.maxPositionEmbeddings,
      logitScale: scale === undefined ? 100 : Math.exp(scale),
      modelKey,
      visionPrecision,
    }, opts);
  }

  /**
   * Open a CLIP model directory: a user's pair of exports when it has `vision_model.onnx` and
   * `text_model.onnx` (at its top or under `onnx/`, the transformers.js layout), else its
   * config and weights (graphs built and cached under `dataDir`, when given).
   *
   * @example
   * const embedder = await OrtClipEmbedder.fromModelDir(resolveClipDir(undefined), { dataDir: 'data' });
   */
  static async fromModelDir(dir: string, src: { dataDir?: string; weightsSha256?: string; logitScale?: number } = {}, opts: OrtClipEmbedderOptions = {}): Promise<OrtClipEmbedder> {
    for (const sub of ['', 'onnx']) {
      const [visionPath, textPath] = ['vision_model.onnx', 'text_model.onnx'].map((f) => join(dir, sub, f)) as [string, string];
      if (existsSync(visionPath) && existsSync(textPath)) {
        return OrtClipEmbedder.fromOnnxFiles({ visionPath, textPath, ...(src.logitScale ? { logitScale: src.logitScale } : {}) }, opts);
      }
    }
    const { configPath, weightsPaths } = findClipFiles(dir);
    const config = readClipConfig(configPath);
    const tensors = await readClipStateDict(weightsPaths);
    return OrtClipEmbedder.fromWeights({ config, tensors, ...(src.dataDir ? { dataDir: src.dataDir } : {}), ...(src.weightsSha256 ? { weightsSha256: src.weightsSha256 } : {}) }, opts);
  }

  /**
   * Open a user-supplied pair of standard CLIP ONNX exports. The vision model must take
   * `pixel_values` and give `image_embeds`; the text model must take `input_ids` (and
   * optionally `attention_mask`) and give `text_embeds` — the names of the Hugging Face /
   * transformers.js exports (CLIPVisionModelWithProjection, CLIPTextModelWithProjection).
   * A ModelLoadError names the file, what it expected and what the file has.
   * `logitScale` is exp(logit_scale), which the exports leave out: 100 for OpenAI's models.
   */
  static async fromOnnxFiles(
    src: { visionPath: string; textPath: string; imageSize?: number; contextLength?: number; logitScale?: number },
    opts: OrtClipEmbedderOptions = {},
  ): Promise<OrtClipEmbedder> {
    if (opts.visionPrecision && opts.visionPrecision !== 'fp32') {
      throw new InputError('visionPrecision', `${src.visionPath}: a user-supplied export runs as it is; \`visionPrecision: ${opts.visionPrecision}\` applies to graphs built from weights`);
    }
    const sessionOpts = sessionOptions(opts);
    const vision = await createOrtSession(src.visionPath, { ...sessionOpts, source: src.visionPath });
    let text: OrtSession | undefined;
    try {
      text = await createOrtSession(src.textPath, { ...sessionOpts, source: src.textPath });
      const px = checkExport(vision, src.visionPath, 'vision', [VISION_INPUT], [], VISION_OUTPUT);
      const ids = checkExport(text, src.textPath, 'text', [TEXT_INPUT], ['attention_mask'], TEXT_OUTPUT);
      const pxShape = px.shape ?? [];
      const fixed = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : undefined);
      const imageSize = src.imageSize ?? fixed(pxShape[3]);
      if (!imageSize) throw new ModelLoadError(`${src.visionPath}: pixel_values has no fixed image size ([${pxShape.join(', ')}]); pass imageSize`);
      const channels = fixed(pxShape[1]) ?? 3;
      const embedDim = fixed(vision.outputs.find((o) => o.name === VISION_OUTPUT)?.shape?.[1]) ?? 0;
      const textDim = fixed(text.outputs.find((o) => o.name === TEXT_OUTPUT)?.shape?.[1]) ?? 0;
      if (embedDim && textDim && embedDim !== textDim) {
        throw new ModelLoadError(`${src.visionPath} and ${src.textPath} are not a pair: image_embeds has width ${embedDim}, text_embeds ${textDim}`);
      }
      // The text cache's model key: the file's identity (path, size, mtime), not a hash of
      // hundreds of MB; replacing the file changes its mtime.
      const stamp = (p: string) => `${resolve(p)}:${statSync(p).size}:${statSync(p).mtimeMs}`;
      return new OrtClipEmbedder(vision, text, {
        imageSize,
        channels,
        embedDim: embedDim || textDim,
        contextLength: src.contextLength ?? fixed(ids.shape?.[1]) ?? 77,
        logitScale: src.logitScale ?? 100,
        modelKey: `user-${sha256Text(stamp(src.textPath))}`,
        visionPrecision: 'fp32',
      }, opts);
    } catch (err) {
      await vision.release();
      await text?.release();
      throw err;
    }
  }

  private rowsOf(v: OrtValue, rows: number): { data: Float32Array; width: number } {
    const width = v.dims[v.dims.length - 1]!;
    if (v.dims[0] !== rows || v.data.length !== rows * width) {
      throw new ShapeError(`The CLIP graph returned [${v.dims.join(', ')}] for ${rows} row(s)`);
    }
    return { data: v.data as Float32Array, width };
  }

  private check(): void {
    if (this.closed) throw new ModelLoadError('This OrtClipEmbedder has been closed');
  }

  /**
   * Image embeddings (unnormalised) [n, E] of `n` images, NCHW float32 already normalised with
   * the model's mean and std (what preprocessForClip / normalizePixels give).
   */
  async embedImages(pixels: Float32Array, n: number): Promise<Float32Array> {
    this.check();
    const { channels: C, imageSize: R } = this.info;
    if (!Number.isInteger(n) || n < 1 || pixels.length !== n * C * R * R) {
      throw new ShapeError(`embedImages expects ${n} image(s) of ${C}×${R}×${R} (${n * C * R * R} values), got ${pixels.length}`);
    }
    return this.images.submit(pixels, n);
  }

  /**
   * Text embeddings (unnormalised) [n, E] of `n` rows of token ids (each row [T], T ≤ the
   * context length, as ClipTokenizer gives them). Rows seen before come from the cache.
   */
  async embedTexts(ids: Int32Array, n: number): Promise<Float32Array> {
    this.check();
    const T = n > 0 ? ids.length / n : 0;
    if (!Number.isInteger(n) || n < 1 || !Number.isInteger(T) || T < 1 || T > this.info.contextLength) {
      throw new ShapeError(`embedTexts expects ${n} row(s) of 1 to ${this.info.contextLength} token ids, got ${ids.length} ids`);
    }
    const rows: (Float32Array | undefined)[] = new Array(n);
    const keys: string[] = new Array(n);
    const missing = new Map<string, number[]>(); // key -> rows wanting it
    for (let r = 0; r < n; r++) {
      const row = ids.subarray(r * T, (r + 1) * T);
      // The causal tower pools at the largest id; nothing after it can change the embedding.
      let end = 0;
      for (let i = 1; i < T; i++) if (row[i]! > row[end]!) end = i;
      const key = row.subarray(0, end + 1).join(' ');
      keys[r] = key;
      const hit = this.lru.get(key) ?? this.fromStore(key);
      if (hit) {
        rows[r] = hit;
        this.stats.textCacheHits++;
      } else {
        const list = missing.get(key);
        if (list) list.push(r);
        else missing.set(key, [r]);
      }
    }
    if (missing.size) {
      const todo = [...missing.values()];
      const batch = new BigInt64Array(todo.length * T);
      todo.forEach((rs, i) => {
        const src = ids.subarray(rs[0]! * T, (rs[0]! + 1) * T);
        for (let j = 0; j < T; j++) batch[i * T + j] = BigInt(src[j]!);
      });
      const out = await this.textBatcher(T).submit(batch, todo.length);
      const E = out.length / todo.length;
      todo.forEach((rs, i) => {
        const e = out.slice(i * E, (i + 1) * E);
        const key = keys[rs[0]!]!;
        this.lru.set(key, e);
        this.opts.textStore?.put(this.info.modelKey, key, e);
        for (const r of rs) rows[r] = e;
      });
    }
    const E = rows[0]!.length;
    const result = new Float32Array(n * E);
    rows.forEach((e, r) => result.set(e!, r * E));
    return result;
  }

  private fromStore(key: string): Float32Array | undefined {
    const e = this.opts.textStore?.get(this.info.modelKey, key);
    if (e) this.lru.set(key, e);
    return e;
  }

  private textBatcher(T: number): MicroBatcher<BigInt64Array> {
    let b = this.texts.get(T);
    if (!b) {
      b = new MicroBatcher(this.lock, T, (n): BigInt64Array => new BigInt64Array(n), async (data, rows) => {
        const feeds: Record<string, OrtValue> = {
          [TEXT_INPUT]: this.textIdsType === 'int32'
            ? { type: 'int32', data: Int32Array.from(data, Number), dims: [rows, T] }
            : { type: 'int64', data, dims: [rows, T] },
        };
        // Exports with an attention mask get all ones: the causal mask already keeps the end
        // token from seeing the padding after it, so the pooled embedding is the same.
        if (this.attentionMask) feeds.attention_mask = this.textIdsType === 'int32'
          ? { type: 'int32', data: new Int32Array(rows * T).fill(1), dims: [rows, T] }
          : { type: 'int64', data: new BigInt64Array(rows * T).fill(1n), dims: [rows, T] };
        const out = await this.text.run(feeds, [TEXT_OUTPUT]);
        this.stats.textRuns++;
        this.stats.textRows += rows;
        return this.rowsOf(out[TEXT_OUTPUT]!, rows);
      }, this.opts.windowMs ?? 3, this.opts.maxBatch ?? 32);
      this.texts.set(T, b);
    }
    return b;
  }

  /**
   * CLIP's logits [n, m]: exp(logit_scale) · cos(image_i, text_j), on the host (a few hundred
   * multiply-adds per pair: not worth a session).
   */
  logits(imageEmbeds: Float32Array, n: number, textEmbeds: Float32Array, m: number): Float32Array {
    return similarityLogits(imageEmbeds, n, textEmbeds, m, this.info.logitScale);
  }

  /** Release both sessions (and close the text store). Pending requests still finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lock.run(async () => {
      await this.vision.release();
      await this.text.release();
    });
    this.opts.textStore?.close?.();
  }
}

/** Check an export's names; returns the info of its main input. */
function checkExport(s: OrtSession, path: string, tower: string, inputs: string[], optional: string[], output: string): OrtIoInfo {
  const names = s.inputs.map((i) => i.name);
  const missingIn = inputs.filter((n) => !names.includes(n));
  const extra = names.filter((n) => !inputs.includes(n) && !optional.includes(n));
  const hasOut = s.outputs.some((o) => o.name === output);
  if (missingIn.length || extra.length || !hasOut) {
    throw new ModelLoadError(
      `${path} is not a standard CLIP ${tower} export: expected input${inputs.length > 1 ? 's' : ''} ${inputs.map((n) => `"${n}"`).join(', ')}` +
      `${optional.length ? ` (optionally ${optional.map((n) => `"${n}"`).join(', ')})` : ''} and output "${output}", ` +
      `found inputs ${describe(s.inputs)} and outputs ${describe(s.outputs)}. ` +
      `Export CLIP${tower === 'vision' ? 'Vision' : 'Text'}ModelWithProjection with the Hugging Face names (as transformers.js's vision_model.onnx / text_model.onnx do).`,
    );
  }
  return s.inputs.find((i) => i.name === inputs[0])!;
}

/**
 * exp(logit_scale) · cos(a_i, b_j) for [n, E] and [m, E] row-major embeddings → [n, m].
 *
 * @example
 * similarityLogits(img, 1, txt, 3, 100); // Float32Array(3)
 */
export function similarityLogits(a: Float32Array, n: number, b: Float32Array, m: number, scale: number): Float32Array {
  const E = a.length / n;
  if (!Number.isInteger(E) || b.length !== m * E) throw new ShapeError(`similarityLogits: ${a.length} values for ${n} rows and ${b.length} for ${m} rows do not share a width`);
  const norms = (x: Float32Array, rows: number) => Float64Array.from({ length: rows }, (_, r) => {
    let s = 0;
    for (let i = r * E; i < (r + 1) * E; i++) s += x[i]! * x[i]!;
    return 1 / Math.max(Math.sqrt(s), 1e-12);
  });
  const na = norms(a, n);
  const nb = norms(b, m);
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < E; k++) s += a[i * E + k]! * b[j * E + k]!;
      out[i * m + j] = scale * s * na[i]! * nb[j]!;
    }
  }
  return out;
}
