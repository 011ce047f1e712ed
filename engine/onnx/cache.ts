/**
 * The on-disk cache of built CLIP graphs: `<dataDir>/onnx/clip-<key>/{vision_model,text_model}.onnx`
 * (and `vision_model.int8.onnx` when the int8 vision graph is asked for),
 * keyed by sha256 over the builder version, the config and every weight (name, shape, bytes).
 * Building ViT-B/32's graphs takes seconds and ~600 MB of copies; a hit is two file paths that
 * onnxruntime maps itself. Files are written under a temporary name and renamed, so a crash
 * mid-write never leaves a truncated model that looks like a hit.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { StateDict } from '../io/host-tensor';
import type { ClipConfig } from '../models/config';
import { buildClipTextOnnx, buildClipVisionOnnx, CLIP_ONNX_BUILDER_VERSION, type ClipOnnxPrecision } from './clip-onnx';

/**
 * The cache key of a model: sha256 of the builder version, the config and the weights, in
 * sorted key order. `weightsSha256` (a checksum of the weight files the registry already
 * knows) stands in for hashing the tensors themselves.
 *
 * @example
 * clipOnnxKey(config, stateDict); // '3f2a…' (64 hex digits)
 */
export function clipOnnxKey(config: ClipConfig, tensors: StateDict, weightsSha256?: string): string {
  const h = createHash('sha256');
  h.update(`clip-onnx builder ${CLIP_ONNX_BUILDER_VERSION}\n${JSON.stringify(config)}\n`);
  if (weightsSha256) {
    h.update(`weights sha256 ${weightsSha256}\n`);
  } else {
    for (const key of [...tensors.keys()].sort()) {
      const t = tensors.get(key)!;
      h.update(`${key} ${t.dtype} [${t.shape.join(',')}]\n`);
      h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
  }
  return h.digest('hex');
}

export interface ClipOnnxFiles {
  /** The cache directory of this model. */
  dir: string;
  visionPath: string;
  textPath: string;
  key: string;
  /** False when both files were already cached (nothing was built). */
  built: boolean;
}

export interface ClipOnnxCacheOptions {
  /** The data directory (CLIP_STUDIO_DATA); graphs go under `<dataDir>/onnx`. */
  dataDir: string;
  config: ClipConfig;
  tensors: StateDict;
  /** A checksum of the weight files, to skip hashing the tensors (see clipOnnxKey). */
  weightsSha256?: string;
  /** The vision graph's precision (default fp32); an int8 graph is cached beside the fp32 one as `vision_model.int8.onnx`. */
  visionPrecision?: ClipOnnxPrecision;
}

function writeAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * The paths of this model's vision and text graphs, building and caching them on a miss.
 *
 * @example
 * const { visionPath, textPath, built } = clipOnnxFiles({ dataDir: 'data', config, tensors });
 */
export function clipOnnxFiles(opts: ClipOnnxCacheOptions): ClipOnnxFiles {
  const key = clipOnnxKey(opts.config, opts.tensors, opts.weightsSha256);
  const dir = join(resolve(opts.dataDir), 'onnx', `clip-${key}`);
  const precision = opts.visionPrecision ?? 'fp32';
  const visionPath = join(dir, precision === 'fp32' ? 'vision_model.onnx' : `vision_model.${precision}.onnx`);
  const textPath = join(dir, 'text_model.onnx');
  let built = false;
  mkdirSync(dir, { recursive: true });
  if (!existsSync(visionPath)) {
    writeAtomic(visionPath, buildClipVisionOnnx(opts.config, opts.tensors, { precision }));
    built = true;
  }
  if (!existsSync(textPath)) {
    writeAtomic(textPath, buildClipTextOnnx(opts.config, opts.tensors, { check: !built }));
    built = true;
  }
  return { dir, visionPath, textPath, key, built };
}
