/**
 * CLIP's byte-level BPE tokenizer, a port of OpenAI CLIP's `clip/simple_tokenizer.py`
 * (`SimpleTokenizer`) and `clip.tokenize`. Same vocabulary file, same cleaning
 * (html.unescape twice, whitespace collapse, lowercase), same split regex, same merges,
 * so the ids match the reference one for one. `ftfy.fix_text` is not ported: the strings
 * it would change (mojibake, odd quotes) are rare in prompts, and the fixtures avoid them.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { InputError, ModelLoadError } from '../errors';

/** The vocabulary shipped with the repo (`models/clip-bpe`), the one every CLIP model uses. */
export const DEFAULT_BPE_PATH = fileURLToPath(
  new URL('../../models/clip-bpe/bpe_simple_vocab_16e6.txt.gz', import.meta.url),
);

/** CLIP's own numbers: 49152 tokens = 512 byte symbols + 48894 merges + 2 specials. */
const VOCAB_SIZE = 49408;
const MERGE_COUNT = 49152 - 256 - 2;
const SOT = '<|startoftext|>';
const EOT = '<|endoftext|>';
/** Token caches are per instance; bounded so hostile input cannot grow memory forever. */
const MAX_CACHE_ENTRIES = 100_000;

// ---------------------------------------------------------------------------------------
// Text cleaning (simple_tokenizer.basic_clean / whitespace_clean)
// ---------------------------------------------------------------------------------------

/**
 * Python's `str.isspace` set, which `re`'s `\s` and `str.strip` use. It differs from JS `\s`
 * (Python adds U+001C..U+001F and U+0085; JS adds U+FEFF), so it is spelled out.
 */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');

/**
 * The HTML 4 entities (Python's `html.entities.name2codepoint`, with HTML5's values for
 * `lang`/`rang`) plus `apos` and the upper-case legacy aliases. Python's `html.unescape`
 * knows all 2231 HTML5 names; these are the ones that turn up in real text.
 */
const ENTITY_TABLE =
  'quot:22 amp:26 apos:27 lt:3c gt:3e nbsp:a0 iexcl:a1 cent:a2 pound:a3 curren:a4 yen:a5 brvbar:a6 ' +
  'sect:a7 uml:a8 copy:a9 ordf:aa laquo:ab not:ac shy:ad reg:ae macr:af deg:b0 plusmn:b1 sup2:b2 ' +
  'sup3:b3 acute:b4 micro:b5 para:b6 middot:b7 cedil:b8 sup1:b9 ordm:ba raquo:bb frac14:bc frac12:bd ' +
  'frac34:be iquest:bf Agrave:c0 Aacute:c1 Acirc:c2 Atilde:c3 Auml:c4 Aring:c5 AElig:c6 Ccedil:c7 ' +
  'Egrave:c8 Eacute:c9 Ecirc:ca Euml:cb Igrave:cc Iacute:cd Icirc:ce Iuml:cf ETH:d0 Ntilde:d1 ' +
  'Ograve:d2 Oacute:d3 Ocirc:d4 Otilde:d5 Ouml:d6 times:d7 Oslash:d8 Ugrave:d9 Uacute:da Ucirc:db ' +
  'Uuml:dc Yacute:dd THORN:de szlig:df agrave:e0 aacute:e1 acirc:e2 atilde:e3 auml:e4 aring:e5 ' +
  'aelig:e6 ccedil:e7 egrave:e8 eacute:e9 ecirc:ea euml:eb igrave:ec iacute:ed icirc:ee iuml:ef ' +
  'eth:f0 ntilde:f1 ograve:f2 oacute:f3 ocirc:f4 otilde:f5 ouml:f6 divide:f7 oslash:f8 ugrave:f9 ' +
  'uacute:fa ucirc:fb uuml:fc yacute:fd thorn:fe yuml:ff OElig:152 oelig:153 Scaron:160 scaron:161 ' +
  'Yuml:178 fnof:192 circ:2c6 tilde:2dc Alpha:391 Beta:392 Gamma:393 Delta:394 Epsilon:395 Zeta:396 ' +
  'Eta:397 Theta:398 Iota:399 Kappa:39a Lambda:39b Mu:39c Nu:39d Xi:39e Omicron:39f Pi:3a0 Rho:3a1 ' +
  'Sigma:3a3 Tau:3a4 Upsilon:3a5 Phi:3a6 Chi:3a7 Psi:3a8 Omega:3a9 alpha:3b1 beta:3b2 gamma:3b3 ' +
  'delta:3b4 epsilon:3b5 zeta:3b6 eta:3b7 theta:3b8 iota:3b9 kappa:3ba lambda:3bb mu:3bc nu:3bd ' +
  'xi:3be omicron:3bf pi:3c0 rho:3c1 sigmaf:3c2 sigma:3c3 tau:3c4 upsilon:3c5 phi:3c6 chi:3c7 ' +
  'psi:3c8 omega:3c9 thetasym:3d1 upsih:3d2 piv:3d6 ensp:2002 emsp:2003 thinsp:2009 zwnj:200c ' +
  'zwj:200d lrm:200e rlm:200f ndash:2013 mdash:2014 lsquo:2018 rsquo:2019 sbquo:201a ldquo:201c ' +
  'rdquo:201d bdquo:201e dagger:2020 Dagger:2021 bull:2022 hellip:2026 permil:2030 prime:2032 ' +
  'Prime:2033 lsaquo:2039 rsaquo:203a oline:203e frasl:2044 euro:20ac image:2111 weierp:2118 ' +
  'real:211c trade:2122 alefsym:2135 larr:2190 uarr:2191 rarr:2192 darr:2193 harr:2194 crarr:21b5 ' +
  'lArr:21d0 uArr:21d1 rArr:21d2 dArr:21d3 hArr:21d4 forall:2200 part:2202 exist:2203 empty:2205 ' +
  'nabla:2207 isin:2208 notin:2209 ni:220b prod:220f sum:2211 minus:2212 lowast:2217 radic:221a ' +
  'prop:221d infin:221e ang:2220 and:2227 or:2228 cap:2229 cup:222a int:222b there4:2234 sim:223c ' +
  'cong:2245 asymp:2248 ne:2260 equiv:2261 le:2264 ge:2265 sub:2282 sup:2283 nsub:2284 sube:2286 ' +
  'supe:2287 oplus:2295 otimes:2297 perp:22a5 sdot:22c5 lceil:2308 rceil:2309 lfloor:230a ' +
  'rfloor:230b lang:27e8 rang:27e9 loz:25ca spades:2660 clubs:2663 hearts:2665 diams:2666 ' +
  'AMP:26 QUOT:22 LT:3c GT:3e COPY:a9 REG:ae';

/** name (`amp;`, and for legacy names also `amp`) → replacement, as in Python's `html5` dict. */
const ENTITIES: ReadonlyMap<string, string> = (() => {
  const m = new Map<string, string>();
  for (const entry of ENTITY_TABLE.split(' ')) {
    const [name, hex] = entry.split(':') as [string, string];
    const cp = parseInt(hex, 16);
    m.set(`${name};`, String.fromCodePoint(cp));
    // HTML5 accepts a missing semicolon only for the Latin-1 set and the upper-case aliases.
    if (cp < 0x100 && name !== 'apos') m.set(name, String.fromCodePoint(cp));
  }
  return m;
})();

/** Windows-1252 meanings of &#128;..&#159; (Python `html._invalid_charrefs`); 5 stay as-is. */
const CP1252_C1 = '€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ';
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function isInvalidCodepoint(n: number): boolean {
  return (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) === 0xfffe;
}

function replaceCharref(ref: string): string {
  if (ref[0] === '#') {
    const hex = ref[1] === 'x' || ref[1] === 'X';
    const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
    const num = parseInt(digits, hex ? 16 : 10);
    if (num === 0) return '\ufffd';
    if (num === 0x0d) return '\r';
    if (num >= 0x80 && num <= 0x9f) return CP1252_C1[num - 0x80]!;
    if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
    if (isInvalidCodepoint(num)) return '';
    return String.fromCodePoint(num);
  }
  const whole = ENTITIES.get(ref);
  if (whole !== undefined) return whole;
  // Longest legacy name that prefixes the reference: "&notit;" → "¬it;".
  for (let x = ref.length - 1; x > 1; x--) {
    const prefix = ENTITIES.get(ref.slice(0, x));
    if (prefix !== undefined) return prefix + ref.slice(x);
  }
  return `&${ref}`;
}

/** Python's `html.unescape` for numeric references and the common named entities. */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_m, ref: string) => replaceCharref(ref));
}

/** `basic_clean` (without ftfy) then `whitespace_clean`, then lowercase, as `encode` does. */
export function cleanText(text: string): string {
  const basic = htmlUnescape(htmlUnescape(text)).replace(PY_STRIP, '');
  return basic.replace(PY_SPACE_RUN, ' ').replace(PY_STRIP, '').toLowerCase();
}

/** The reference split pattern (Python `regex`, IGNORECASE), with Python's whitespace set. */
const SPLIT = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${PY_SPACE}\\p{L}\\p{N}]+`,
  'giu',
);

// ---------------------------------------------------------------------------------------
// Byte-level BPE
// ---------------------------------------------------------------------------------------

/**
 * GPT-2's reversible byte → printable-character map: printable Latin-1 bytes map to
 * themselves, the rest to U+0100 onwards, so every byte string is a string of "letters".
 * Returned as [byte, char] pairs in the reference dict's insertion order (printable bytes
 * first), which is also the order of the first 256 vocabulary entries.
 */
export function bytesToUnicode(): Array<[number, string]> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const pairs: Array<[number, string]> = bs.map((b) => [b, String.fromCharCode(b)]);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) pairs.push([b, String.fromCharCode(256 + n++)]);
  }
  return pairs;
}

let defaultInstance: Promise<ClipTokenizer> | undefined;
const utf8 = new TextEncoder();

/**
 * The CLIP tokenizer: text → BPE ids and back, and batches of context-length id rows.
 *
 * Ids equal those of the reference `SimpleTokenizer` / `clip.tokenize(truncate=True)`.
 *
 * @example
 * const tok = await ClipTokenizer.load();
 * tok.encode('a dog');                      // [320, 1929]
 * const { ids } = tok.tokenize(['a dog']);  // Int32Array(77): 49406, 320, 1929, 49407, 0, …
 */
export class ClipTokenizer {
  readonly vocabSize: number;
  readonly sotToken: number;
  readonly eotToken: number;
  /** byte → symbol, indexed by byte value. */
  private readonly byteEncoder: string[] = new Array(256);
  private readonly byteDecoder = new Map<string, number>();
  private readonly encoder = new Map<string, number>();
  private readonly decoder: string[];
  /** "first second" → merge rank (lower merges first). */
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  private constructor(merges: string[]) {
    const symbols = bytesToUnicode();
    for (const [b, ch] of symbols) { this.byteEncoder[b] = ch; this.byteDecoder.set(ch, b); }
    const vocab = [...symbols.map(([, c]) => c), ...symbols.map(([, c]) => `${c}</w>`)];
    merges.forEach((merge, rank) => {
      const parts = merge.split(/\s+/);
      this.ranks.set(`${parts[0]} ${parts[1]}`, rank);
      vocab.push(parts.join(''));
    });
    vocab.push(SOT, EOT);
    // A later duplicate wins, as in Python's dict(zip(vocab, range(len(vocab)))).
    vocab.forEach((token, id) => this.encoder.set(token, id));
    this.decoder = vocab;
    this.vocabSize = vocab.length;
    this.sotToken = this.encoder.get(SOT)!;
    this.eotToken = this.encoder.get(EOT)!;
  }

  /**
   * Load a `bpe_simple_vocab_16e6.txt.gz`-style merges file (default: the bundled one,
   * loaded once and shared). Throws ModelLoadError if the file is missing or too short.
   *
   * @example
   * const tok = await ClipTokenizer.load();
   */
  static load(path?: string): Promise<ClipTokenizer> {
    if (path === undefined || path === DEFAULT_BPE_PATH) {
      defaultInstance ??= ClipTokenizer.fromFile(DEFAULT_BPE_PATH).catch((err) => {
        defaultInstance = undefined; // let a later call retry
        throw err;
      });
      return defaultInstance;
    }
    return ClipTokenizer.fromFile(path);
  }

  private static async fromFile(path: string): Promise<ClipTokenizer> {
    let text: string;
    try {
      const raw = await readFile(path);
      text = (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
    } catch (cause) {
      throw new ModelLoadError(`Could not read the BPE vocabulary ${path}: ${(cause as Error).message}`, { cause });
    }
    // Line 0 is the "#version" header; CLIP keeps the next 48894 merges.
    const merges = text.split('\n').slice(1, MERGE_COUNT + 1);
    if (merges.length !== MERGE_COUNT || merges.some((m) => m.split(/\s+/).length !== 2)) {
      throw new ModelLoadError(
        `The BPE vocabulary ${path} must hold ${MERGE_COUNT} merges of two symbols each after its header line.`,
      );
    }
    const tok = new ClipTokenizer(merges);
    if (tok.vocabSize !== VOCAB_SIZE) {
      throw new ModelLoadError(`The BPE vocabulary ${path} gives ${tok.vocabSize} tokens, expected ${VOCAB_SIZE}.`);
    }
    return tok;
  }

  /** Text → BPE ids, without start/end tokens (SimpleTokenizer.encode). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new InputError('text', `Expected a string to tokenize, got ${typeof text}.`);
    const ids: number[] = [];
    for (const match of cleanText(text).matchAll(SPLIT)) {
      let symbols = '';
      for (const b of utf8.encode(match[0])) symbols += this.byteEncoder[b]!;
      for (const piece of this.bpe(symbols)) ids.push(this.encoder.get(piece)!);
    }
    return ids;
  }

  /** BPE ids → text; word ends become spaces, invalid UTF-8 becomes U+FFFD (SimpleTokenizer.decode). */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const token = this.decoder[ids[i]!];
      if (token === undefined) throw new InputError('ids', `Token id ${ids[i]} is outside the vocabulary (0..${this.vocabSize - 1}).`);
      for (const ch of token) bytes.push(this.byteDecoder.get(ch)!);
    }
    return new TextDecoder('utf-8').decode(new Uint8Array(bytes)).replaceAll('</w>', ' ');
  }

  /**
   * Texts → one row of `contextLength` ids each (clip.tokenize with truncate=True):
   * `<|startoftext|>`, at most contextLength−2 text tokens, `<|endoftext|>`, zero padding.
   *
   * @example
   * const { ids, truncated } = tok.tokenize(['a red circle', 'a blue square']); // ids: Int32Array(154)
   */
  tokenize(texts: readonly string[], contextLength = 77): { ids: Int32Array; truncated: boolean[] } {
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new InputError('contextLength', `The \`contextLength\` option must be an integer of at least 2, got ${contextLength}.`);
    }
    const ids = new Int32Array(texts.length * contextLength);
    const truncated: boolean[] = [];
    texts.forEach((text, row) => {
      const tokens = this.encode(text);
      const keep = Math.min(tokens.length, contextLength - 2);
      const base = row * contextLength;
      ids[base] = this.sotToken;
      for (let i = 0; i < keep; i++) ids[base + 1 + i] = tokens[i]!;
      ids[base + 1 + keep] = this.eotToken;
      truncated.push(tokens.length > keep);
    });
    return { ids, truncated };
  }

  /** The id of a vocabulary entry (`'dog</w>'`, `'<|endoftext|>'`), or undefined. */
  tokenIdOf(token: string): number | undefined {
    return this.encoder.get(token);
  }

  /** Whether `word` is a single token at the end of a word (`'dog'` → `'dog</w>'`). */
  hasToken(word: string): boolean {
    const ids = this.encode(word);
    return ids.length === 1;
  }

  /** The vocabulary entry for an id (`'dog</w>'`), or undefined. */
  tokenOf(id: number): string | undefined {
    return this.decoder[id];
  }

  /** One pre-token (a string of byte symbols) → its BPE pieces (SimpleTokenizer.bpe). */
  private bpe(token: string): string[] {
    if (token === SOT || token === EOT) return [token];
    const cached = this.cache.get(token);
    if (cached) return cached;
    let word = [...token.slice(0, -1), `${token.slice(-1)}</w>`];
    while (word.length > 1) {
      // The adjacent pair with the lowest merge rank.
      let best: string | undefined;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) { bestRank = rank; best = `${word[i]} ${word[i + 1]}`; }
      }
      if (best === undefined) break;
      const [first, second] = best.split(' ') as [string, string];
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === first && i < word.length - 1 && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]!);
          i += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
    this.cache.set(token, word);
    return word;
  }
}
