/**
 * What the demo trainers share: AdamW (decoupled weight decay, Loshchilov & Hutter 2019, as
 * torch.optim.AdamW), a warmup + cosine learning-rate schedule, seeded normal initialisation
 * and a small wall-clock meter. tfjs has Adam but no decoupled decay, and CLIP trains with it.
 */
import { tf } from '../runtime/tf';
import { createRng } from './rng';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay, applied only to the variables in `decay`. */
  weightDecay?: number;
  /** A learning-rate multiplier per variable (1 for those not listed), e.g. a slower image tower. */
  lrScale?: ReadonlyMap<tf.Variable, number>;
}

/**
 * AdamW over a fixed list of variables. `step(grads, lr)` applies one update; the moments are
 * tf.Variables it owns (dispose() frees them).
 *
 * @example
 * const opt = new AdamW(vars, new Set(matrices), { weightDecay: 0.1 });
 * const { value, grads } = tf.variableGrads(loss, vars); opt.step(grads, 1e-3);
 */
export class AdamW {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly lrScale: ReadonlyMap<tf.Variable, number>;

  constructor(private readonly vars: tf.Variable[], private readonly decay: ReadonlySet<tf.Variable>, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.98; // CLIP's β2
    this.eps = opts.eps ?? 1e-6;
    this.weightDecay = opts.weightDecay ?? 0.1;
    this.lrScale = opts.lrScale ?? new Map();
    const zeros = (x: tf.Variable) => {
      const z = tf.zerosLike(x);
      const v = tf.variable(z, false); // a variable keeps its own handle on the data
      z.dispose();
      return v;
    };
    this.m = vars.map(zeros);
    this.v = vars.map(zeros);
  }

  /** One update; `grads` is variableGrads' map (by variable name). Disposes nothing it is given. */
  step(grads: tf.NamedTensorMap, lr: number): void {
    this.t++;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    tf.tidy(() => {
      this.vars.forEach((x, i) => {
        const g = grads[x.name];
        if (!g) return;
        const m = tf.add(tf.mul(this.m[i]!, this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i]!, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
        const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), this.eps));
        const rate = lr * (this.lrScale.get(x) ?? 1);
        const decayed = this.decay.has(x) ? tf.mul(x, 1 - rate * this.weightDecay) : x;
        x.assign(tf.sub(decayed, tf.mul(update, rate)));
      });
    });
  }

  /** The moments as plain arrays, for checkpoints. */
  async state(): Promise<{ t: number; m: Float32Array[]; v: Float32Array[] }> {
    return { t: this.t, m: await Promise.all(this.m.map((x) => x.data() as Promise<Float32Array>)), v: await Promise.all(this.v.map((x) => x.data() as Promise<Float32Array>)) };
  }

  restore(s: { t: number; m: Float32Array[]; v: Float32Array[] }): void {
    this.t = s.t;
    tf.tidy(() => { // the host copies are temporaries: assign keeps its own handle
      this.m.forEach((x, i) => x.assign(tf.tensor(s.m[i]!, x.shape)));
      this.v.forEach((x, i) => x.assign(tf.tensor(s.v[i]!, x.shape)));
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}

/**
 * Linear warmup to `peak` over `warmup` steps, then cosine decay to `peak · floor` at `total`.
 *
 * @example
 * warmupCosine(0, 1e-3, 100, 1000); // 1e-5
 */
export function warmupCosine(step: number, peak: number, warmup: number, total: number, floor = 0.02): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

/**
 * `n` seeded normal draws with standard deviation `std`, for reproducible initialisation.
 *
 * @example
 * const w = seededNormal(64 * 64, 0.02, 7);
 */
export function seededNormal(n: number, std: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
  return out;
}

/** Seconds since `start` (performance.now()), for logs and model cards. */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}
