// Dynamic batching: requests' token-id sequences wait in one FIFO queue and are merged into packed
// batches (model.packBatch: sequences concatenated with cumulative offsets, no padding) of at most
// `maxBatchTokens` tokens. A batch starts when the queue holds that many tokens or its oldest request
// has waited `maxWaitMs`; one batch is on the device at a time; rows go back to their requests in order.
// A request larger than one batch is cut across batches. The queue is bounded (`maxQueueTokens`):
// beyond it `submit` refuses (QueueFullError) instead of letting latency grow without bound. A request
// whose signal aborts (client gone, timeout) has its sequences not yet on the device dropped.
// With `merge: false` every request is encoded alone (still in FIFO order, one batch at a time).
import { packBatch } from '../model/embedding-model.js';
import { nonFiniteReason, nonFiniteValue, TextError } from '../model/text-error.js';

/** Runs one packed batch: rows of `dim` values, one per sequence, in order. */
export type BatchEncoder = (tokens: Int32Array, cuSeqlens: Int32Array) => Promise<Float32Array>;

export interface BatcherOptions {
  maxBatchTokens: number;
  maxWaitMs: number;
  maxQueueTokens: number;
  merge: boolean;
}

export interface BatchInfo {
  texts: number;
  tokens: number;
  /** Distinct requests whose sequences the batch carried. */
  requests: number;
  seconds: number;
}

export interface BatcherEvents {
  onBatch?(info: BatchInfo): void;
  /** Sequences dropped before reaching the device, and why (the signal's abort reason). */
  onDrop?(texts: number, reason: unknown): void;
  onQueue?(tokens: number, requests: number): void;
}

export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(
    readonly queuedTokens: number,
    readonly retryAfterSeconds: number,
  ) {
    super(`the queue is full (${queuedTokens} tokens waiting); retry in ${retryAfterSeconds} s`);
  }
}

interface Job {
  ids: Int32Array[];
  out: Float32Array;
  /** Next sequence not yet given to a batch. */
  next: number;
  /** Sequences whose rows have come back. */
  done: number;
  enqueuedAt: number;
  finished: boolean;
  resolve(rows: Float32Array): void;
  reject(err: unknown): void;
}

export class Batcher {
  private readonly queue: Job[] = [];
  private queued = 0;
  private busy = false;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  /** Smoothed tokens per second of recent batches (for Retry-After). */
  private rate = 0;

  constructor(
    private readonly encode: BatchEncoder,
    private readonly dim: number,
    private readonly options: BatcherOptions,
    private readonly events: BatcherEvents = {},
  ) {
    for (const k of ['maxBatchTokens', 'maxQueueTokens'] as const) {
      if (!Number.isInteger(options[k]) || options[k] < 1) throw new Error(`${k} must be a positive integer, got ${options[k]}`);
    }
    if (!(options.maxWaitMs >= 0)) throw new Error(`maxWaitMs must be ≥ 0, got ${options.maxWaitMs}`);
  }

  /** Tokens waiting (not yet on the device). */
  get queuedTokens(): number {
    return this.queued;
  }

  get queuedRequests(): number {
    return this.queue.length;
  }

  /** Smoothed encode throughput in tokens per second (0 before the first batch). */
  get tokensPerSecond(): number {
    return this.rate;
  }

  /**
   * Embeds `ids` (each a model input, BOS included) and resolves with their rows [n × dim] in order.
   * Rejects with QueueFullError at once when the queue cannot take them, or with the signal's reason.
   */
  submit(ids: Int32Array[], signal?: AbortSignal): Promise<Float32Array> {
    if (signal?.aborted) {
      if (ids.length > 0) this.events.onDrop?.(ids.length, signal.reason); // they never reach the device either
      return Promise.reject(signal.reason);
    }
    if (ids.length === 0) return Promise.resolve(new Float32Array(0));
    const tokens = ids.reduce((s, x) => s + x.length, 0);
    if (this.queued > 0 && this.queued + tokens > this.options.maxQueueTokens) {
      return Promise.reject(new QueueFullError(this.queued, this.retryAfter(tokens)));
    }
    return new Promise<Float32Array>((resolve, reject) => {
      const job: Job = {
        ids,
        out: new Float32Array(ids.length * this.dim),
        next: 0,
        done: 0,
        enqueuedAt: performance.now(),
        finished: false,
        resolve,
        reject,
      };
      this.queue.push(job);
      this.queued += tokens;
      this.events.onQueue?.(this.queued, this.queue.length);
      if (signal) {
        const onAbort = (): void => this.abort(job, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        const clean = (): void => signal.removeEventListener('abort', onAbort);
        job.resolve = (rows) => {
          clean();
          resolve(rows);
        };
        job.reject = (err) => {
          clean();
          reject(err);
        };
      }
      this.kick();
    });
  }

  /** Resolves once nothing is queued or on the device. */
  idle(): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Seconds until `extra` more tokens would likely fit, from the recent throughput (at least 1). */
  private retryAfter(extra: number): number {
    const rate = this.rate > 0 ? this.rate : 1000;
    return Math.max(1, Math.ceil((this.queued + extra - this.options.maxQueueTokens) / rate));
  }

  private abort(job: Job, reason: unknown): void {
    if (job.finished) return;
    job.finished = true;
    const dropped = job.ids.length - job.next;
    this.removeQueued(job);
    if (dropped > 0) this.events.onDrop?.(dropped, reason);
    job.reject(reason);
    this.kick();
  }

  private kick(): void {
    if (this.busy) return;
    if (this.queue.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    const waited = performance.now() - this.queue[0]!.enqueuedAt;
    const ready = !this.options.merge || this.queued >= this.options.maxBatchTokens || waited >= this.options.maxWaitMs;
    if (!ready) {
      this.timer ??= setTimeout(() => {
        this.timer = null;
        this.kick();
      }, this.options.maxWaitMs - waited);
      return;
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.busy = true;
    void this.runBatch().finally(() => {
      this.busy = false;
      this.kick();
    });
  }

  /** Takes sequences from the head of the queue up to maxBatchTokens and encodes them. */
  private async runBatch(): Promise<void> {
    const items: { job: Job; index: number }[] = [];
    const seqs: Int32Array[] = [];
    let tokens = 0;
    while (this.queue.length > 0) {
      const job = this.queue[0]!;
      while (job.next < job.ids.length) {
        const len = job.ids[job.next]!.length;
        if (seqs.length > 0 && tokens + len > this.options.maxBatchTokens) break;
        items.push({ job, index: job.next });
        seqs.push(job.ids[job.next]!);
        tokens += len;
        job.next++;
      }
      if (job.next < job.ids.length) break; // the batch is full
      this.queue.shift();
      if (!this.options.merge) break;
    }
    this.queued -= tokens;
    this.events.onQueue?.(this.queued, this.queue.length);
    const started = performance.now();
    let rows: Float32Array;
    try {
      const { tokens: packed, cuSeqlens } = packBatch(seqs);
      rows = await this.encode(packed, cuSeqlens);
    } catch (err) {
      for (const { job } of items) {
        if (job.finished) continue;
        job.finished = true;
        this.removeQueued(job);
        job.reject(err);
      }
      return;
    }
    const seconds = (performance.now() - started) / 1000;
    const instant = tokens / Math.max(seconds, 1e-6);
    this.rate = this.rate === 0 ? instant : 0.8 * this.rate + 0.2 * instant;
    this.events.onBatch?.({ texts: seqs.length, tokens, requests: new Set(items.map((i) => i.job)).size, seconds });
    const d = this.dim;
    items.forEach(({ job, index }, j) => {
      if (job.finished) return; // aborted while on the device: its rows are discarded
      const bad = nonFiniteValue(rows, j, d);
      if (bad !== null) {
        job.finished = true;
        this.removeQueued(job);
        job.reject(new TextError('encode', nonFiniteReason(bad), index));
        return;
      }
      job.out.set(rows.subarray(j * d, (j + 1) * d), index * d);
      job.done++;
      if (job.done === job.ids.length) {
        job.finished = true;
        job.resolve(job.out);
      }
    });
  }

  private removeQueued(job: Job): void {
    const at = this.queue.indexOf(job);
    if (at < 0) return;
    this.queue.splice(at, 1);
    for (let i = job.next; i < job.ids.length; i++) this.queued -= job.ids[i]!.length;
    job.next = job.ids.length;
    this.events.onQueue?.(this.queued, this.queue.length);
  }
}
