/**
 * A token bucket per player and kind of event: `capacity` events at once, refilled at
 * `perSecond`. Time comes from the caller (the game's clock), so tests need no sleeping.
 *
 * @example
 * const draws = new TokenBucket(2, 1); // a burst of 2, then one a second
 * if (!draws.take(clock.now())) refuse();
 */
export class TokenBucket {
  private tokens: number;
  private last: number | null = null;

  constructor(readonly capacity: number, readonly perSecond: number) {
    if (!(capacity >= 1) || !(perSecond > 0)) throw new RangeError(`A token bucket needs capacity >= 1 and a positive rate, got ${capacity}, ${perSecond}.`);
    this.tokens = capacity;
  }

  /** Take one token at time `now` (ms); false when the bucket is empty. */
  take(now: number): boolean {
    if (this.last !== null) this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
