/**
 * The one place that imports onnxruntime-node: session creation, execution providers and
 * thread counts, plus the health probe. Everything else talks to ORT through `OrtSession`,
 * so the rest of the engine never sees an ORT type.
 *
 * Providers: CUDA when ORT's CUDA build is installed (its provider library sits next to the
 * binding — `npm install onnxruntime-node --onnxruntime-node-install=cuda12` puts it there),
 * else CPU. WebGPU on request (`CLIP_STUDIO_ORT_PROVIDER=webgpu`): onnxruntime-node 1.30's stock
 * Linux x64 binary carries ORT's WebGPU provider (Dawn, over Vulkan; its symbols show it), so
 * any GPU with a Vulkan driver can run the towers with nothing more installed. It is not
 * chosen by `auto`: a machine that merely has a GPU device may have no working Vulkan driver,
 * and a small model gains little over the CPU. Threads: one intra-op thread per core
 * (os.availableParallelism), one inter-op thread; a transformer's graph is a chain, so running
 * nodes in parallel gains nothing and would oversubscribe the cores the matmuls already use. Idle
 * threads do not spin (see `spin`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';
import { ModelLoadError } from '../errors';

type OrtModule = typeof Ort;
let loaded: Promise<OrtModule> | undefined;

/** Import onnxruntime-node once (it loads the native binding). */
export function loadOrt(): Promise<OrtModule> {
  loaded ??= import('onnxruntime-node').then((m) => ((m as { default?: OrtModule }).default ?? m) as OrtModule).catch((err: unknown) => {
    loaded = undefined;
    throw new ModelLoadError(`onnxruntime-node could not load: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  });
  return loaded;
}

export interface OnnxHealth {
  available: boolean;
  version?: string;
  backends?: { name: string; bundled: boolean }[];
  /** Whether ORT's CUDA provider library is installed next to the binding. */
  cuda?: boolean;
  /** The provider sessions are asked for (`CLIP_STUDIO_ORT_PROVIDER`, default `auto`). */
  provider?: ProviderChoice;
  /** Intra-op threads sessions are created with. */
  threads?: number;
  error?: string;
}

const require = createRequire(import.meta.url);

/** The directory holding onnxruntime_binding.node and the provider libraries, if found. */
function bindingDir(): string | undefined {
  try {
    const bin = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin');
    for (const napi of existsSync(bin) ? readdirSync(bin) : []) {
      const dir = join(bin, napi, process.platform, process.arch);
      if (existsSync(join(dir, 'onnxruntime_binding.node'))) return dir;
    }
  } catch {
    // not installed; loadOrt reports that
  }
  return undefined;
}

/** True when ORT's CUDA execution provider library is installed. */
export function cudaInstalled(): boolean {
  const dir = bindingDir();
  if (!dir) return false;
  return readdirSync(dir).some((f) => /^(lib)?onnxruntime_providers_cuda\.(so|dll)/.test(f));
}

/** Intra-op threads for a session: every core this process may use. */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Probe onnxruntime-node for the health report: a successful import with a version and a
 * backend list is a truthful "it works here". A missing binary is a report, not a crash.
 */
export async function probeOnnx(): Promise<OnnxHealth> {
  try {
    const ort = await loadOrt();
    const backends = ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled }));
    const versions = ort.env.versions as Record<string, string | undefined>;
    return { available: true, version: versions.node ?? versions.common, backends, cuda: cudaInstalled(), provider: providerChoice(), threads: defaultThreads() };
  } catch (err) {
    return { available: false, error: (err as Error).message.split('\n')[0] };
  }
}

export type OrtDType = 'float32' | 'int64' | 'int32';
export type OrtData = Float32Array | BigInt64Array | Int32Array;

/** A tensor going into or coming out of a session. */
export interface OrtValue {
  type: OrtDType;
  data: OrtData;
  dims: readonly number[];
}

/**
 * Float32 feeds named by the keys of `shapes`, with `values` as their data: the weights of a
 * training graph that takes them as inputs. A missing value is an error naming it (`what`: whose).
 */
export function float32Feeds(shapes: ReadonlyMap<string, readonly number[]>, values: ReadonlyMap<string, Float32Array>, what: string): Record<string, OrtValue> {
  const feeds: Record<string, OrtValue> = {};
  for (const [name, shape] of shapes) {
    const data = values.get(name);
    if (!data) throw new Error(`${what}: no value for ${name}`);
    feeds[name] = { type: 'float32', data, dims: [...shape] };
  }
  return feeds;
}

/** What a session says about one of its inputs or outputs. */
export interface OrtIoInfo {
  name: string;
  /** Element type (`float32`, `int64`, …), when ORT reports one. */
  type?: string;
  /** Dimensions: numbers for fixed sizes, strings for named dynamic ones. */
  shape?: readonly (number | string)[];
}

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';
export type ProviderChoice = 'auto' | ExecutionProvider;
export const PROVIDER_CHOICES: readonly ProviderChoice[] = ['auto', 'cpu', 'cuda', 'webgpu'];

/**
 * The provider sessions are created on when the caller names none: `CLIP_STUDIO_ORT_PROVIDER`
 * (`auto`, `cpu`, `cuda`, `webgpu`), default `auto`. A value outside those is an error naming
 * the variable, not a silent fall back to the CPU.
 */
export function providerChoice(value: string | undefined = process.env.CLIP_STUDIO_ORT_PROVIDER): ProviderChoice {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '') return 'auto';
  if ((PROVIDER_CHOICES as readonly string[]).includes(v)) return v as ProviderChoice;
  throw new ModelLoadError(`CLIP_STUDIO_ORT_PROVIDER must be one of ${PROVIDER_CHOICES.join(', ')}, got "${value}"`);
}

export interface OrtSessionOptions {
  /**
   * `auto`: CUDA when installed, else CPU. `cuda` and `webgpu` fail when the provider cannot
   * start (ORT still runs any node the provider lacks a kernel for on the CPU). Default:
   * `CLIP_STUDIO_ORT_PROVIDER`, else `auto`.
   */
  provider?: ProviderChoice;
  /** Intra-op threads; default one per core. */
  threads?: number;
  /**
   * Let idle intra-op threads spin between ops (ORT's default). Off by default here: the
   * studio shares its cores with tfjs jobs, and on a busy machine a spinning pool made a
   * small model's batch 2.3× slower (84 vs 36 ms p50, demo vision tower, 2 cores, load 5).
   */
  spin?: boolean;
  /** Where the model came from, for error messages. */
  source?: string;
}

/** A loaded ONNX model, with ORT hidden behind plain typed arrays. */
export interface OrtSession {
  readonly inputs: OrtIoInfo[];
  readonly outputs: OrtIoInfo[];
  /** The provider the session runs on. */
  readonly provider: ExecutionProvider;
  readonly threads: number;
  /** Run with named inputs; returns the requested outputs (default: all) as float32/int arrays. */
  run(feeds: Record<string, OrtValue>, outputs?: readonly string[]): Promise<Record<string, OrtValue>>;
  release(): Promise<void>;
}

function ioInfo(names: readonly string[], meta: readonly Ort.InferenceSession.ValueMetadata[] | undefined): OrtIoInfo[] {
  return names.map((name, i) => {
    const m = meta?.[i];
    return m && m.isTensor ? { name, type: m.type, shape: m.shape } : { name };
  });
}

/**
 * Create a session from an .onnx file or its bytes, on CUDA when available (falling back to
 * the CPU if the CUDA provider cannot start), with one intra-op thread per core.
 *
 * @example
 * const s = await createOrtSession('data/onnx/…/vision_model.onnx');
 * const { image_embeds } = await s.run({ pixel_values: { type: 'float32', data, dims: [1, 3, 224, 224] } });
 */
export async function createOrtSession(model: string | Uint8Array, opts: OrtSessionOptions = {}): Promise<OrtSession> {
  const ort = await loadOrt();
  const threads = opts.threads ?? defaultThreads();
  const want = opts.provider ?? providerChoice();
  const source = opts.source ?? (typeof model === 'string' ? model : 'an in-memory ONNX model');
  const base: Ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: opts.spin ? '1' : '0' } } },
  };
  // The WebGPU provider warns on every session that ORT keeps shape ops on the CPU (by design).
  if (want === 'webgpu') base.logSeverityLevel = 3;
  const create = (providers: ExecutionProvider[]) =>
    typeof model === 'string'
      ? ort.InferenceSession.create(model, { ...base, executionProviders: providers })
      : ort.InferenceSession.create(model, { ...base, executionProviders: providers });

  let session: Ort.InferenceSession;
  let provider: ExecutionProvider = 'cpu';
  try {
    if (want === 'webgpu') {
      session = await create(['webgpu', 'cpu']);
      provider = 'webgpu';
    } else if (want === 'cuda' || (want === 'auto' && cudaInstalled())) {
      try {
        session = await create(['cuda', 'cpu']);
        provider = 'cuda';
      } catch (err) {
        if (want === 'cuda') throw err;
        session = await create(['cpu']);
      }
    } else {
      session = await create(['cpu']);
    }
  } catch (err) {
    const why = (err as Error).message.split('\n')[0];
    throw new ModelLoadError(`onnxruntime could not load ${source}${want === 'cpu' || want === 'auto' ? '' : ` on the ${want} provider`}: ${why}`, { cause: err });
  }

  const s = session;
  return {
    inputs: ioInfo(s.inputNames, s.inputMetadata),
    outputs: ioInfo(s.outputNames, s.outputMetadata),
    provider,
    threads,
    async run(feeds, outputs) {
      const inputs: Record<string, Ort.Tensor> = {};
      for (const [name, v] of Object.entries(feeds)) inputs[name] = new ort.Tensor(v.type, v.data, v.dims);
      const result = outputs ? await s.run(inputs, [...outputs]) : await s.run(inputs);
      const out: Record<string, OrtValue> = {};
      for (const [name, t] of Object.entries(result)) {
        out[name] = { type: t.type as OrtDType, data: t.data as OrtData, dims: t.dims };
      }
      return out;
    },
    release: () => s.release(),
  };
}
