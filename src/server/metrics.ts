// The server's Prometheus metrics (GET /metrics), in a registry of its own so that two servers in one
// process (tests) never share counts.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatcherEvents } from './batcher.js';
import { ApiError } from './errors.js';

const POWERS_OF_TWO = (max: number): number[] => {
  const out: number[] = [];
  for (let v = 1; v <= max; v *= 2) out.push(v);
  return out;
};

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'l2e_http_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'l2e_http_request_duration_seconds',
    help: 'Time from request to response, by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly queueTokens = new Gauge({ name: 'l2e_queue_tokens', help: 'Tokens waiting for the device', registers: [this.registry] });
  readonly queueRequests = new Gauge({ name: 'l2e_queue_requests', help: 'Requests waiting for the device', registers: [this.registry] });
  readonly batchTexts = new Histogram({
    name: 'l2e_batch_texts',
    help: 'Texts per packed batch',
    buckets: POWERS_OF_TWO(4096),
    registers: [this.registry],
  });
  readonly batchTokens = new Histogram({
    name: 'l2e_batch_tokens',
    help: 'Tokens per packed batch',
    buckets: POWERS_OF_TWO(1 << 20),
    registers: [this.registry],
  });
  readonly batchRequests = new Histogram({
    name: 'l2e_batch_requests',
    help: 'Requests merged into one packed batch',
    buckets: POWERS_OF_TWO(1024),
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'l2e_batch_duration_seconds',
    help: 'Device time per packed batch',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly tokens = new Counter({ name: 'l2e_tokens_total', help: 'Tokens encoded (rate() gives tokens/s)', registers: [this.registry] });
  readonly tokensPerSecond = new Gauge({
    name: 'l2e_tokens_per_second',
    help: 'Encode throughput of recent batches (smoothed)',
    registers: [this.registry],
  });
  readonly texts = new Counter({ name: 'l2e_texts_total', help: 'Texts encoded', registers: [this.registry] });
  readonly dropped = new Counter({
    name: 'l2e_dropped_texts_total',
    help: 'Texts dropped before reaching the device (client gone, timeout)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'l2e_' });
    // the reasons' series exist from the start at 0, so a rate over them is defined before the first drop
    for (const reason of ['client_closed', 'timeout']) this.dropped.inc({ reason }, 0);
  }

  /** `n` texts dropped before reaching the device, under their abort reason's code. */
  drop(n: number, reason: unknown): void {
    this.dropped.inc({ reason: reason instanceof ApiError && reason.code ? reason.code : 'aborted' }, n);
  }

  /** Hooks for the batcher; `rate` reads its smoothed throughput. */
  batcherEvents(rate: () => number): BatcherEvents {
    return {
      onBatch: (b) => {
        this.batchTexts.observe(b.texts);
        this.batchTokens.observe(b.tokens);
        this.batchRequests.observe(b.requests);
        this.batchSeconds.observe(b.seconds);
        this.tokens.inc(b.tokens);
        this.texts.inc(b.texts);
        this.tokensPerSecond.set(rate());
      },
      onDrop: (n, reason) => this.drop(n, reason),
      onQueue: (tokens, requests) => {
        this.queueTokens.set(tokens);
        this.queueRequests.set(requests);
      },
    };
  }
}
