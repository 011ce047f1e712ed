/**
 * One entry point for weight files, whatever their format, and the key/shape check every model
 * import runs before it touches a tensor (after nanoGPT's `from_pretrained`, which asserts every
 * expected key and shape, and OpenAI CLIP's `build_model`, which drops training-only buffers).
 */
import { open } from 'node:fs/promises';
import { ModelLoadError } from '../errors';
import type { StateDict } from './host-tensor';
import { readSafetensors } from './safetensors';
import { readTorchCheckpoint } from './torch';

export interface LoadedWeights {
  tensors: StateDict;
  /** What the file held besides tensors (torch checkpoints only; empty for safetensors). */
  ignored: string[];
  format: 'safetensors' | 'torch';
}

/**
 * Read a weights file, telling safetensors from a `torch.save` zip by its first bytes rather
 * than its extension (`.bin`, `.pt`, `.ckpt` and `.pth` are all used for both in the wild).
 *
 * @example
 * const { tensors, format } = await readStateDict('models/clip-vit-b-32/pytorch_model.bin');
 * checkStateDict(tensors, expectedShapes, { modelName: 'CLIP ViT-B/32' });
 */
export async function readStateDict(path: string, options: { filter?: (name: string) => boolean } = {}): Promise<LoadedWeights> {
  const head = Buffer.alloc(4);
  try {
    const fh = await open(path, 'r');
    try { await fh.read(head, 0, 4, 0); } finally { await fh.close(); }
  } catch (err) {
    throw new ModelLoadError(`Cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (head.toString('latin1') === 'PK\x03\x04') {
    const { tensors, ignored } = await readTorchCheckpoint(path, options);
    return { tensors, ignored, format: 'torch' };
  }
  if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) {
    throw new ModelLoadError(`${path} is a legacy (PyTorch < 1.6) torch.save file, which is not supported; re-save it with a newer PyTorch or convert it to safetensors`);
  }
  const { tensors } = readSafetensors(path, options.filter);
  return { tensors, ignored: [], format: 'safetensors' };
}

export interface CheckOptions {
  /** Named in every error, e.g. `CLIP ViT-B/32`. */
  modelName: string;
  /** Keys under these prefixes are not part of the model (e.g. `loss.` in taming checkpoints). */
  ignorePrefixes?: string[];
  /** When false, keys the model does not expect are listed in `ignored` instead of rejected. */
  strict?: boolean;
}

/** Buffers that training code saves but inference never reads. */
const TRAINING_ONLY = [/(^|\.)position_ids$/, /(^|\.)num_batches_tracked$/, /^loss\./];

/**
 * Check a state dict against the keys and shapes a model expects, naming the first missing key
 * or wrong shape. Keys the model does not use but that are known to be training-only (buffers
 * such as `text_model.embeddings.position_ids`, a taming checkpoint's `loss.*`) or under
 * `ignorePrefixes` are returned in `ignored`; any other unexpected key is an error unless
 * `strict` is false, since it usually means the file is for another model. A shape `[]` and `[1]`
 * are treated as the same single value (exporters disagree on `logit_scale`).
 *
 * @example
 * const { ignored } = checkStateDict(tensors, new Map([['quantize.embedding.weight', [1024, 256]]]),
 *   { modelName: 'VQGAN f16', ignorePrefixes: ['loss.'] });
 */
export function checkStateDict(tensors: StateDict, expected: Map<string, number[]>, options: CheckOptions): { ignored: string[] } {
  const who = options.modelName;
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) {
      throw new ModelLoadError(`${who}: the weights lack ${name} (expected shape [${shape}]; the file has ${tensors.size} tensors)`);
    }
    if (!sameShape(t.shape, shape)) {
      throw new ModelLoadError(`${who}: ${name}: expected [${shape}], got [${t.shape}]`);
    }
  }
  const ignored: string[] = [];
  const prefixes = options.ignorePrefixes ?? [];
  for (const name of tensors.keys()) {
    if (expected.has(name)) continue;
    if (prefixes.some((p) => name.startsWith(p)) || TRAINING_ONLY.some((re) => re.test(name)) || options.strict === false) {
      ignored.push(name);
    } else {
      throw new ModelLoadError(`${who}: the weights hold ${name}, which the model does not use; is this the right file? (pass ignorePrefixes to skip it)`);
    }
  }
  return { ignored };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length <= 1 && b.length <= 1 && (a[0] ?? 1) === 1 && (b[0] ?? 1) === 1) return true;
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
