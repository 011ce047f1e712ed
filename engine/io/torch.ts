/**
 * Reader for `torch.save` zip checkpoints (`.pt`, Hugging Face `pytorch_model.bin`, Lightning /
 * taming-transformers `.ckpt`), after PyTorch's `torch/serialization.py` (`_load`,
 * `persistent_load`) and `torch/_utils.py` (`_rebuild_tensor_v2`).
 *
 * Layout: `<top>/data.pkl` is a pickle whose tensors are
 * `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`, each storage a persistent id
 * `('storage', torch.FloatStorage, key, location, numel)` whose bytes are the entry
 * `<top>/data/<key>`. Several tensors may be views into one storage (q/k/v of a fused
 * projection), so offsets and strides are honoured and non-contiguous views are copied out.
 *
 * The pickle runs in `./pickle`, where only the globals allow-listed below resolve; anything
 * else (`os.system`, `builtins.eval`, a pickled `__main__.Model`) is a ModelLoadError naming it.
 */
import { open, type FileHandle } from 'node:fs/promises';
import yauzl from 'yauzl';
import { ModelLoadError } from '../errors';
import { decodeElements, numel, storedElementSize, type HostTensor, type StateDict } from './host-tensor';
import { unpickle, describe, type PyCallable, type PyContainer, type PyStateful } from './pickle';

export interface TorchCheckpoint {
  /** Every tensor of the state dict (or of the top-level dict), named by its key path. */
  tensors: StateDict;
  /** What was left out: non-tensor entries and top-level keys such as `optimizer_states`. */
  ignored: string[];
  /** Top-level scalars (`epoch`, `global_step`, `pytorch-lightning_version`, …). */
  extra: Record<string, unknown>;
}

export interface TorchReadOptions {
  /** Read only the tensors whose names it accepts; the others' bytes are never read. */
  filter?: (name: string) => boolean;
}

/** Torch storage class names → safetensors dtype names (as `HostTensor.storedAs` reports them). */
const STORAGE_DTYPES: Record<string, string> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8',
  ByteStorage: 'U8', BoolStorage: 'BOOL', UntypedStorage: 'U8',
};

/** `torch.<dtype>` globals (newer pickles name the dtype rather than a typed storage class). */
const TORCH_DTYPES: Record<string, string> = {
  float32: 'F32', float: 'F32', float64: 'F64', double: 'F64', float16: 'F16', half: 'F16',
  bfloat16: 'BF16', int64: 'I64', long: 'I64', int32: 'I32', int: 'I32', int16: 'I16',
  short: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};

/**
 * Modules whose classes may appear in Lightning checkpoints' bookkeeping (callback state,
 * hyper-parameters, numpy scalars). They become inert records: nothing is run, and nothing
 * from them reaches the returned tensors.
 */
const INERT_MODULES = ['pytorch_lightning.', 'lightning.', 'lightning_fabric.', 'omegaconf.', 'numpy.', 'typing.'];
const INERT_NAMES = new Set(['argparse.Namespace', 'torch.nn.parameter.Parameter', 'torch.Tensor', 'builtins.object']);

class StorageType { constructor(readonly storedAs: string) {} }

interface StorageRef { key: string; storedAs: string; location: string }

class TensorRef implements PyStateful {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
  setState(): void { /* a tensor's Python __dict__ (rare) carries nothing we need */ }
}

/**
 * A Lightning/numpy/omegaconf object: its name and whatever state and items the pickle gave it
 * (Lightning's AttributeDict is a dict subclass, so SETITEMS lands on it).
 */
class InertObject implements PyStateful, PyContainer {
  state: unknown;
  readonly items: unknown[] = [];
  constructor(readonly pyName: string, readonly args: unknown[]) {}
  setState(state: unknown): void { this.state = state; }
  set(key: unknown, value: unknown): void { this.items.push([key, value]); }
  append(value: unknown): void { this.items.push(value); }
}

const fn = (pyName: string, call: (args: unknown[]) => unknown): PyCallable => ({ pyName, call });

function asInt(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new ModelLoadError(`${what} must be a non-negative integer, got ${String(x)}`);
  return x;
}
function asInts(x: unknown, what: string): number[] {
  if (!Array.isArray(x)) throw new ModelLoadError(`${what} must be a tuple of integers, got ${describe(x)}`);
  return x.map((v, i) => asInt(v, `${what}[${i}]`));
}

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(typeof storage === 'object' && storage !== null && 'key' in storage)) {
    throw new ModelLoadError(`_rebuild_tensor_v2 expects a storage, got ${describe(storage)}`);
  }
  const s = asInts(size, 'tensor size');
  const st = asInts(stride, 'tensor stride');
  if (s.length !== st.length) throw new ModelLoadError(`tensor size [${s}] and stride [${st}] differ in rank`);
  return new TensorRef(storage as StorageRef, asInt(offset, 'storage offset'), s, st);
}

/** The allow-list. Returns the JS stand-in for `module.name` or throws naming it. */
function resolveGlobal(source: string, module: string, name: string): unknown {
  const full = `${module}.${name}`;
  switch (full) {
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor':
      return fn(full, rebuildTensor);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return fn(full, (args) => args[0]); // a Parameter is its data for our purposes
    case 'torch._tensor._rebuild_from_type_v2':
    case 'torch._utils._rebuild_from_type_v2': // (func, type, args, state): a tensor subclass
      return fn(full, (args) => {
        const [inner, , innerArgs] = args;
        if (!(typeof inner === 'object' && inner !== null && 'call' in inner)) throw new ModelLoadError(`${source}: ${full} wraps ${describe(inner)}`);
        return (inner as PyCallable).call(innerArgs as unknown[]);
      });
    case 'collections.OrderedDict':
      return fn(full, (args) => new Map(Array.isArray(args[0]) ? (args[0] as [unknown, unknown][]) : []));
    case 'torch.Size':
      return fn(full, (args) => [...(args[0] as unknown[])]);
    case 'torch.device':
      return fn(full, (args) => args.map(String).join(':'));
    case '_codecs.encode': // protocol 2 spells bytes as _codecs.encode(str, 'latin1')
      return fn(full, (args) => Uint8Array.from(String(args[0]), (c) => c.charCodeAt(0) & 0xff));
    case 'copyreg._reconstructor': case 'copy_reg._reconstructor': // (cls, base, state): protocol 0/1 objects
      return fn(full, (args) => {
        if (!(typeof args[0] === 'object' && args[0] !== null && 'call' in args[0])) throw new ModelLoadError(`${source}: ${full} of ${describe(args[0])}`);
        return (args[0] as PyCallable).call([]);
      });
    case 'builtins.set': case '__builtin__.set': case 'builtins.frozenset':
      return fn(full, (args) => new Set(args[0] as Iterable<unknown>));
  }
  if (module === 'torch' || module === 'torch.storage') {
    if (STORAGE_DTYPES[name]) return new StorageType(STORAGE_DTYPES[name]!);
    if (TORCH_DTYPES[name]) return new StorageType(TORCH_DTYPES[name]!);
  }
  if (INERT_NAMES.has(full) || INERT_MODULES.some((m) => full.startsWith(m))) {
    return fn(full, (args) => new InertObject(full, args));
  }
  throw new ModelLoadError(
    `${source}: the checkpoint's pickle refers to ${full}, which is not allowed in a weights file ` +
      `(only tensors, dicts and Lightning bookkeeping are). Refusing to load it: save a state_dict instead.`,
  );
}

function persistentLoad(source: string, pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 4) {
    throw new ModelLoadError(`${source}: unsupported persistent id ${describe(pid)} (expected a ('storage', …) tuple)`);
  }
  const [, type, key, location] = pid;
  if (!(type instanceof StorageType)) throw new ModelLoadError(`${source}: storage ${String(key)} has no known dtype (${describe(type)})`);
  return { key: String(key), storedAs: type.storedAs, location: String(location) };
}

/**
 * Read a `torch.save` zip checkpoint into host tensors, running its pickle in an allow-listing
 * unpickler. A Lightning checkpoint's `state_dict` is used and its scalars go to `extra`;
 * nested dicts of tensors are flattened with dots. Float16/bfloat16/float64 widen to float32,
 * int64 narrows to int32 (range-checked).
 *
 * @example
 * const { tensors, extra } = await readTorchCheckpoint('models/vqgan/last.ckpt');
 * console.log(extra.global_step, tensors.get('quantize.embedding.weight')?.shape);
 */
export async function readTorchCheckpoint(path: string, options: TorchReadOptions = {}): Promise<TorchCheckpoint> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new ModelLoadError(`Cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const entries = new Map<string, yauzl.Entry>();
    let zip: yauzl.ZipFile;
    try {
      zip = await yauzl.fromFdPromise(fh.fd, { autoClose: false, validateEntrySizes: true });
      for await (const entry of zip.eachEntry()) entries.set(entry.fileName, entry);
    } catch (err) {
      throw new ModelLoadError(`${path} is not a readable torch.save zip: ${(err as Error).message}`, { cause: err });
    }
    const reader = new EntryReader(path, fh, zip);
    const pkls = [...entries.keys()].filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
    if (pkls.length === 0) throw new ModelLoadError(`${path} has no data.pkl: not a torch.save checkpoint (entries: ${[...entries.keys()].slice(0, 5).join(', ')})`);
    pkls.sort((a, b) => a.length - b.length);
    const top = pkls[0]!.slice(0, -'data.pkl'.length);
    const byteorder = entries.get(`${top}byteorder`);
    if (byteorder && (await reader.read(byteorder)).toString('latin1').trim() !== 'little') {
      throw new ModelLoadError(`${path} was saved on a big-endian machine; only little-endian checkpoints are supported`);
    }

    const source = `${path}: ${pkls[0]}`;
    const root = unpickle(await reader.read(entries.get(pkls[0]!)!), {
      source,
      resolveGlobal: (m, n) => resolveGlobal(source, m, n),
      persistentLoad: (pid) => persistentLoad(source, pid),
    });
    const { refs, ignored, extra } = collect(path, root);

    // Read each storage once, materialise every wanted tensor viewing it, then let it go.
    const byStorage = new Map<string, [string, TensorRef][]>();
    for (const [name, ref] of refs) {
      if (options.filter && !options.filter(name)) continue;
      const list = byStorage.get(ref.storage.key) ?? [];
      list.push([name, ref]);
      byStorage.set(ref.storage.key, list);
    }
    const wanted = new Map<string, HostTensor>();
    for (const [key, list] of byStorage) {
      const entry = entries.get(`${top}data/${key}`);
      if (!entry) throw new ModelLoadError(`${path}: tensor ${list[0]![0]} needs storage ${top}data/${key}, which the zip lacks`);
      const bytes = await reader.read(entry);
      for (const [name, ref] of list) wanted.set(name, materialise(`${path}: ${name}`, ref, bytes));
    }
    const tensors: StateDict = new Map();
    for (const [name] of refs) {
      const t = wanted.get(name);
      if (t) tensors.set(name, t); // file order, as the pickle listed them
    }
    return { tensors, ignored, extra };
  } finally {
    // Not zip.close(): for fromFd it closes the fd itself, racing this close (and a reused fd).
    await fh.close();
  }
}

const SCALAR = (v: unknown) => v === null || ['number', 'string', 'boolean', 'bigint'].includes(typeof v);

/** Walk the unpickled object: pick the state dict, flatten nested dicts, sort out the rest. */
function collect(path: string, root: unknown) {
  if (!(root instanceof Map)) {
    const what = root instanceof InertObject ? root.pyName : root instanceof TensorRef ? 'a single tensor' : describe(root);
    throw new ModelLoadError(`${path} holds ${what}, not a dict of tensors; save model.state_dict() instead`);
  }
  const refs: [string, TensorRef][] = [];
  const ignored: string[] = [];
  const extra: [string, unknown][] = [];
  let stateDict: Map<unknown, unknown> = root;
  const sd = root.get('state_dict');
  if (sd instanceof Map) {
    stateDict = sd;
    for (const [k, v] of root) {
      if (k === 'state_dict') continue;
      if (SCALAR(v)) extra.push([String(k), v]);
      else ignored.push(String(k));
    }
  }
  const walk = (dict: Map<unknown, unknown>, prefix: string) => {
    for (const [k, v] of dict) {
      const name = prefix + String(k);
      if (v instanceof TensorRef) refs.push([name, v]);
      else if (v instanceof Map) walk(v, `${name}.`);
      else if (dict === root && SCALAR(v)) extra.push([name, v]);
      else ignored.push(name);
    }
  };
  walk(stateDict, '');
  return { refs, ignored, extra: Object.fromEntries(extra) as Record<string, unknown> };
}

/** Copy a (possibly strided) view out of its storage's bytes and decode it. */
function materialise(what: string, ref: TensorRef, storage: Buffer) {
  const storedAs = ref.storage.storedAs;
  const size = storedElementSize(storedAs)!;
  const storageNumel = Math.floor(storage.length / size);
  const count = numel(ref.size);
  const shape = [...ref.size];
  if (count === 0) return { ...decodeElements(storedAs, new Uint8Array(0), 0, what), storedAs, shape };
  let last = ref.offset;
  for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * ref.stride[d]!;
  if (last >= storageNumel) {
    throw new ModelLoadError(`${what}: view (offset ${ref.offset}, size [${shape}], stride [${ref.stride}]) reaches element ${last} of a storage of ${storageNumel}`);
  }
  let contiguous = true;
  for (let d = shape.length - 1, expect = 1; d >= 0; d--) {
    if (shape[d] !== 1 && ref.stride[d] !== expect) contiguous = false;
    expect *= shape[d]!;
  }
  let bytes: Uint8Array;
  if (contiguous) {
    bytes = storage.subarray(ref.offset * size, (ref.offset + count) * size);
  } else {
    bytes = gather(storage, size, ref.offset, shape, ref.stride, count);
  }
  return { ...decodeElements(storedAs, bytes, count, what), storedAs, shape };
}

/** Row-major copy of a strided view: an odometer over all but the last dimension. */
function gather(src: Buffer, size: number, offset: number, shape: number[], stride: number[], count: number): Uint8Array {
  const out = new Uint8Array(count * size);
  const rank = shape.length;
  const inner = shape[rank - 1]!;
  const innerStride = stride[rank - 1]!;
  const index = new Array<number>(rank).fill(0);
  let base = offset;
  for (let o = 0; o < count; o += inner) {
    if (innerStride === 1) {
      out.set(src.subarray(base * size, (base + inner) * size), o * size);
    } else {
      for (let i = 0, to = o * size; i < inner; i++) {
        const from = (base + i * innerStride) * size;
        for (let b = 0; b < size; b++) out[to++] = src[from + b]!;
      }
    }
    for (let d = rank - 2; d >= 0; d--) { // advance the odometer
      index[d]!++;
      base += stride[d]!;
      if (index[d]! < shape[d]!) break;
      base -= index[d]! * stride[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** Reads whole zip entries: positional reads for stored entries, yauzl's inflater otherwise. */
class EntryReader {
  constructor(private path: string, private fh: FileHandle, private zip: yauzl.ZipFile) {}

  async read(entry: yauzl.Entry): Promise<Buffer> {
    const length = entry.uncompressedSize;
    const out = Buffer.allocUnsafe(length);
    try {
      if (entry.compressionMethod === 0) {
        const { fileDataStart } = await this.zip.readLocalFileHeaderPromise(entry, { minimal: true });
        for (let done = 0; done < length;) {
          const chunk = Math.min(length - done, 1 << 30);
          const { bytesRead } = await this.fh.read(out, done, chunk, fileDataStart + done);
          if (bytesRead === 0) throw new Error(`file ends ${length - done} bytes early`);
          done += bytesRead;
        }
      } else {
        const stream = await this.zip.openReadStreamPromise(entry);
        let done = 0;
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (done + chunk.length > length) throw new Error('inflates past its recorded size');
          chunk.copy(out, done);
          done += chunk.length;
        }
        if (done !== length) throw new Error(`inflated to ${done} bytes, expected ${length}`);
      }
    } catch (err) {
      if (err instanceof ModelLoadError) throw err;
      throw new ModelLoadError(`${this.path}: cannot read ${entry.fileName}: ${(err as Error).message}`, { cause: err });
    }
    return out;
  }
}
