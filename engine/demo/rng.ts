/**
 * A small seeded PRNG (sfc32, seeded through splitmix32) for the synthetic demo world:
 * the same seed gives the same sequence on every platform, so a sample is reproducible
 * from `(seed, index)` alone.
 */

/** A seeded random source with the helpers the world's renderers need. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number;
  /** Integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** One element, uniformly. */
  pick<T>(items: readonly T[]): T;
  /** Standard normal (Box–Muller). */
  normal(): number;
  /** An independent generator derived from this one (advances this one by one draw). */
  fork(): Rng;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * A seeded generator. Seeds are 32-bit integers; other numbers are truncated to 32 bits.
 *
 * @example
 * const rng = createRng(42);
 * rng.int(1, 3); // the same value on every run
 */
export function createRng(seed: number): Rng {
  const init = splitmix32(seed);
  let a = init(), b = init(), c = init(), d = init();
  const u32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) u32(); // let the state mix before the first output
  const next = () => u32() / 4294967296;
  const rng: Rng = {
    next,
    range: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (items) => {
      if (items.length === 0) throw new RangeError('pick() from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
    normal: () => {
      const u = 1 - next(); // (0, 1]: log stays finite
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
    fork: () => createRng(u32()),
  };
  return rng;
}

/**
 * The seed of the `index`-th sample of a batch, so sample i is the same whether it is
 * rendered alone or within a batch of any size.
 *
 * @example
 * const rng = createRng(sampleSeed(7, 1234));
 */
export function sampleSeed(seed: number, index: number): number {
  return splitmix32(Math.imul(seed >>> 0, 0x27d4eb2d) ^ index)();
}
