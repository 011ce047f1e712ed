/**
 * A small, safe unpickler for the data-only pickles inside PyTorch checkpoints, after CPython's
 * `Lib/pickle.py` (`_Unpickler`) and the opcode table in `Lib/pickletools.py` (protocols 0–5).
 *
 * Why our own and not `pickleparser`: a pickle is a program, and the only dangerous opcodes are
 * the ones that name Python callables (GLOBAL, STACK_GLOBAL, INST) and call them (REDUCE, NEWOBJ,
 * OBJ, BUILD). Here every name goes through the caller's `resolveGlobal`, which returns the JS
 * stand-in for an allow-listed name or throws; nothing else can be reached, and nothing the file
 * says is ever evaluated. A generic parser that turns unknown classes into objects makes that
 * decision for us, with less precise error messages and no control over which names pass.
 *
 * Python values map to: dict/OrderedDict → Map (instance attributes set by BUILD are kept apart,
 * see `pyAttributes`), list and tuple → Array, set/frozenset → Set, str → string, bytes →
 * Uint8Array, int → number (bigint beyond 2^53), float → number, None → null, bool → boolean.
 */
import { ModelLoadError } from '../errors';

/** What `resolveGlobal` returns for a name that may be called (REDUCE, NEWOBJ, OBJ, INST). */
export interface PyCallable {
  readonly pyName: string;
  call(args: unknown[]): unknown;
}

/** An object that accepts the state of a BUILD opcode (Python's `__setstate__`). */
export interface PyStateful {
  setState(state: unknown): void;
}

export interface UnpickleOptions {
  /** Map `module.name` to a value or a PyCallable; throw to forbid it. */
  resolveGlobal(module: string, name: string): unknown;
  /** Resolve a persistent id (BINPERSID / PERSID), e.g. torch's storage tuples. */
  persistentLoad?(pid: unknown): unknown;
  /** Named in error messages, e.g. `clip.pt: archive/data.pkl`. */
  source: string;
}

export function isPyCallable(x: unknown): x is PyCallable {
  return typeof x === 'object' && x !== null && typeof (x as PyCallable).call === 'function' && typeof (x as PyCallable).pyName === 'string';
}

/** An object built by an allowed class that is a dict or list subclass (SETITEMS / APPENDS on it). */
export interface PyContainer {
  set(key: unknown, value: unknown): void;
  append(value: unknown): void;
}

function asContainer(x: unknown): PyContainer | undefined {
  const c = x as PyContainer | null;
  return typeof c === 'object' && c !== null && typeof c.set === 'function' && typeof c.append === 'function' ? c : undefined;
}

const attributes = new WeakMap<object, unknown>();

/** The instance attributes a BUILD opcode gave a dict (e.g. the `_metadata` of a state dict). */
export function pyAttributes(dict: Map<unknown, unknown>): unknown {
  return attributes.get(dict);
}

const MARK = Symbol('mark');
const MAX_MEMO = 50_000_000;

/**
 * Run a pickle and return the object it builds, without executing anything it names.
 *
 * @example
 * const obj = unpickle(bytes, {
 *   source: 'data.pkl',
 *   resolveGlobal: (m, n) => { throw new ModelLoadError(`${m}.${n} is not allowed`); },
 * });
 */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  let pos = 0;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new ModelLoadError(`${options.source}: ${msg} (at byte ${pos})`);
  };
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail(`pickle is truncated: needs ${n} more bytes`);
  };
  const u8 = () => { need(1); return bytes[pos++]!; };
  const u16 = () => { need(2); const v = view.getUint16(pos, true); pos += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(pos, true); pos += 4; return v; };
  const i32 = () => { need(4); const v = view.getInt32(pos, true); pos += 4; return v; };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) fail(`length ${v} exceeds the pickle`);
    return Number(v);
  };
  const take = (n: number) => { need(n); const b = bytes.subarray(pos, pos + n); pos += n; return b; };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('pickle is truncated: missing newline');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const utf8 = (b: Uint8Array) => {
    try { return text.decode(b); } catch { return fail('invalid UTF-8 in a string'); }
  };
  const pop = () => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  // Note: popMark replaces `stack`, so never write `stack.push(...popMark()...)` (push binds first).
  const popMark = () => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) return fail('MARK missing');
    stack = prev;
    return items;
  };
  const put = (i: number) => {
    if (memo.size >= MAX_MEMO && !memo.has(i)) fail('memo is too large');
    memo.set(i, top());
  };
  const get = (i: number) => {
    if (!memo.has(i)) fail(`memo key ${i} was never stored`);
    return memo.get(i);
  };
  const global = (module: string, name: string) => options.resolveGlobal(module, name);
  const callable = (f: unknown, op: string): PyCallable => {
    if (!isPyCallable(f)) fail(`${op} on a value that is not an allowed callable (${describe(f)})`);
    return f as PyCallable;
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    const target = dict instanceof Map ? dict : asContainer(dict);
    if (!target) return fail(`SETITEM on ${describe(dict)}, not a dict`);
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const appendAll = (list: unknown, items: unknown[]) => {
    if (Array.isArray(list)) { for (const x of items) list.push(x); return; }
    if (list instanceof Set) { for (const x of items) list.add(x); return; }
    const target = asContainer(list);
    if (!target) return fail(`APPEND on ${describe(list)}, not a list`);
    for (const x of items) target.append(x);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME: the length is only a hint for buffered readers
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) fail(`STOP with ${stack.length} values and ${marks.length} open marks`);
        return stack[0];
      }
      case 0x28: marks.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP

      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x8a: stack.push(longFromBytes(take(u8()))); break; // LONG1
      case 0x8b: stack.push(longFromBytes(take(u32()))); break; // LONG4
      case 0x49: { // INT (text); "00"/"01" are protocol 0 booleans
        const s = line();
        stack.push(s === '00' ? false : s === '01' ? true : parseIntText(s, fail));
        break;
      }
      case 0x4c: stack.push(parseIntText(line().replace(/L$/, ''), fail)); break; // LONG (text)
      case 0x47: need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x46: stack.push(Number(line())); break; // FLOAT (text)

      case 0x58: stack.push(utf8(take(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(utf8(take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8(take(u64()))); break; // BINUNICODE8
      case 0x56: stack.push(line()); break; // UNICODE (raw-unicode-escape; torch never writes it)
      case 0x54: stack.push(latin1.decode(take(u32()))); break; // BINSTRING (py2 str)
      case 0x55: stack.push(latin1.decode(take(u8()))); break; // SHORT_BINSTRING
      case 0x53: stack.push(line().replace(/^(['"])(.*)\1$/, '$2')); break; // STRING
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(take(u64()).slice()); break; // BINBYTES8
      case 0x96: stack.push(take(u64()).slice()); break; // BYTEARRAY8

      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(Object.freeze([])); break; // EMPTY_TUPLE
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x6c: { const items = popMark(); stack.push(items); break; } // LIST
      case 0x74: { const items = popMark(); stack.push(Object.freeze(items)); break; } // TUPLE
      case 0x85: stack.push(Object.freeze([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(Object.freeze([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(Object.freeze([a, b, c])); break; } // TUPLE3
      case 0x64: { const items = popMark(); const d = new Map(); setItems(d, items); stack.push(d); break; } // DICT
      case 0x91: { const items = popMark(); stack.push(new Set(items)); break; } // FROZENSET
      case 0x61: { const x = pop(); appendAll(top(), [x]); break; } // APPEND
      case 0x65: { const items = popMark(); appendAll(top(), items); break; } // APPENDS
      case 0x90: { const items = popMark(); appendAll(top(), items); break; } // ADDITEMS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS

      case 0x71: put(u8()); break; // BINPUT
      case 0x72: put(u32()); break; // LONG_BINPUT
      case 0x94: put(memo.size); break; // MEMOIZE
      case 0x70: put(parseIntText(line(), fail) as number); break; // PUT
      case 0x68: stack.push(get(u8())); break; // BINGET
      case 0x6a: stack.push(get(u32())); break; // LONG_BINGET
      case 0x67: stack.push(get(parseIntText(line(), fail) as number)); break; // GET

      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(); const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const f = callable(pop(), 'REDUCE');
        if (!Array.isArray(args)) fail(`REDUCE arguments for ${f.pyName} are not a tuple`);
        stack.push(f.call(args as unknown[]));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = callable(pop(), 'NEWOBJ');
        stack.push(cls.call(args as unknown[]));
        break;
      }
      case 0x92: { // NEWOBJ_EX: keyword arguments are dropped; allowed classes take none
        pop();
        const args = pop();
        const cls = callable(pop(), 'NEWOBJ_EX');
        stack.push(cls.call(args as unknown[]));
        break;
      }
      case 0x6f: { // OBJ: MARK cls args... OBJ
        const items = popMark();
        const cls = callable(items[0], 'OBJ');
        stack.push(cls.call(items.slice(1)));
        break;
      }
      case 0x69: { // INST: module \n name \n, then MARK args
        const module = line(); const name = line();
        const cls = callable(global(module, name), 'INST');
        const args = popMark();
        stack.push(cls.call(args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof Map) attributes.set(obj, state);
        else if (typeof obj === 'object' && obj !== null && typeof (obj as PyStateful).setState === 'function') (obj as PyStateful).setState(state);
        else fail(`BUILD on ${describe(obj)}, which takes no state`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('persistent id found but none expected');
        stack.push(options.persistentLoad!(pid));
        break;
      }
      case 0x50: { // PERSID
        const pid = line();
        if (!options.persistentLoad) fail('persistent id found but none expected');
        stack.push(options.persistentLoad!(pid));
        break;
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
    if (marks.length > 10_000 || stack.length > 10_000_000) fail('pickle nests too deeply');
  }
}

/** Little-endian two's complement → number, or bigint when it does not fit exactly. */
function longFromBytes(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string, fail: (m: string) => never): number | bigint {
  if (!/^[-+]?\d+$/.test(s.trim())) fail(`bad integer literal ${JSON.stringify(s)}`);
  const v = BigInt(s.trim());
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A short description of a value for error messages. */
export function describe(x: unknown): string {
  if (x === null) return 'None';
  if (x instanceof Map) return 'a dict';
  if (Array.isArray(x)) return 'a list/tuple';
  if (isPyCallable(x)) return x.pyName;
  if (typeof x === 'object') return (x as { constructor?: { name?: string } }).constructor?.name ?? 'an object';
  return typeof x;
}
