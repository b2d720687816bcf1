// A small seeded PRNG (xoshiro128**, seeded through splitmix32) so every sampled choice — mined
// pairs, shuffles, training groups — is reproducible from one integer seed, in any JS runtime.

import { describeValue } from './describe.js';

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `seed` is any integer (reduced mod 2^32); `stream` picks an independent sequence for the same seed. */
  constructor(seed: number, stream = 0) {
    for (const [name, v] of [['seed', seed], ['stream', stream]] as const) {
      if (typeof v !== 'number') throw new TypeError(`Rng: ${name} must be a number, got ${describeValue(v)}`);
      if (!Number.isFinite(v)) throw new RangeError(`Rng: ${name} must be a finite number, got ${v}`);
    }
    const st = { s: (Math.trunc(seed) ^ Math.imul(Math.trunc(stream) + 1, 0x27d4eb2f)) | 0 };
    // mix the high bits of large seeds in too
    st.s = (st.s ^ Math.trunc(seed / 0x100000000)) | 0;
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is a fixed point
  }

  /** The generator's internal state (four uint32), for checkpoints; setState restores it exactly. */
  getState(): [number, number, number, number] {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  /** Restores a state returned by getState(). */
  setState(state: readonly number[]): void {
    if (state.length !== 4 || !state.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) {
      throw new Error(`Rng.setState: expected four uint32 values, got ${JSON.stringify(state)}`);
    }
    if (state.every((x) => x === 0)) throw new Error('Rng.setState: the all-zero state is invalid');
    [this.a, this.b, this.c, this.d] = [state[0]! | 0, state[1]! | 0, state[2]! | 0, state[3]! | 0];
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling); n ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`Rng.int: bad bound ${n}`);
    const limit = 0x100000000 - (0x100000000 % n); // largest multiple of n that fits
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Shuffles `arr` (an array or a typed array) in place (Fisher–Yates) and returns it. */
  shuffle<A extends { length: number; [i: number]: unknown }>(arr: A): A {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i]!;
      arr[i] = arr[j]!;
      arr[j] = tmp;
    }
    return arr;
  }

  /** `k` distinct items of `arr` in random order (all of them, shuffled, when k ≥ length); `arr` is untouched. */
  sample<T>(arr: readonly T[], k: number): T[] {
    const copy = arr.slice();
    const m = Math.min(k, copy.length);
    // partial Fisher–Yates: only the first m positions are drawn
    for (let i = 0; i < m; i++) {
      const j = i + this.int(copy.length - i);
      const tmp = copy[i]!;
      copy[i] = copy[j]!;
      copy[j] = tmp;
    }
    return copy.slice(0, m);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
