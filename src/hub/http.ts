// Minimal HTTP(S) GET for the Hub client over node's http/https: redirects followed (the token is
// dropped when a redirect leaves the original origin: another host, e.g. a CDN, or http after https),
// status codes turned into HubErrors with advice, 5xx, 429 and dropped connections retried with a short
// backoff, or after the Retry-After the server asks for.
import * as http from 'node:http';
import * as https from 'node:https';
import { counted } from '../util/plural.js';

export class HubError extends Error {
  override name = 'HubError';
  constructor(
    message: string,
    readonly status?: number,
    /** Seconds the server asked to wait before a retry (Retry-After). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** The longest Retry-After waited for; beyond it the request fails, saying how long the server asked. */
const MAX_RETRY_AFTER_S = 60;

export interface HubRequest {
  url: string;
  token?: string;
  headers?: Record<string, string>;
  method?: 'GET' | 'HEAD';
  /** Socket idle time before the request fails (default 60 s). */
  idleTimeoutMs?: number;
  /** Follow redirects to other origins too (default true); false answers with such a redirect itself. */
  crossOrigin?: boolean;
  /** What the request is for, used in error messages ("repo org/name", "file config.json of org/name"). */
  what: string;
}

export interface RetryPolicy {
  /** Attempts in all (default 4). */
  attempts?: number;
  /** First backoff in ms, doubled each time (default 500). */
  delayMs?: number;
  /** Called before each retry, with why the attempt failed: a stalled or failing Hub is said, not silent. */
  onRetry?: (what: string, reason: string, next: number, attempts: number) => void;
}

const MAX_REDIRECTS = 10;

/**
 * Whether a request to `url`, reached from the request first made to `origin` (its URL's origin), may
 * carry the token: only to that same scheme, host and port. Never to another host (a CDN), nor in clear
 * text after https (https://hf.co and http://hf.co have the same host).
 */
export function tokenGoesTo(origin: string, url: URL): boolean {
  return url.origin === origin;
}

/** Sends one request, following redirects; resolves with the final response (status < 300 or error statuses). */
export function openUrl(req: HubRequest): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const origin = new URL(req.url).origin;
    const go = (url: URL, hops: number): void => {
      const lib = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
      if (!lib) return reject(new HubError(`unsupported URL ${url.href}`));
      const headers: Record<string, string> = { 'user-agent': 'llama2-embedding', ...req.headers };
      if (req.token && tokenGoesTo(origin, url)) headers['authorization'] = `Bearer ${req.token}`;
      let response: http.IncomingMessage | undefined;
      const r = lib.request(url, { method: req.method ?? 'GET', headers }, (res) => {
        response = res;
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (status >= 300 && status < 400) {
          res.resume();
          if (!location) return reject(new HubError(`${req.what}: ${url.href} answered HTTP ${status} (a redirect) with no Location`, status));
          if (hops >= MAX_REDIRECTS) return reject(new HubError(`too many redirects for ${req.what} (the last to ${location})`));
          let next: URL;
          try {
            next = new URL(location, url);
          } catch {
            return reject(new HubError(`${req.what}: ${url.host} redirected to an invalid URL ${JSON.stringify(location)}`));
          }
          // (a HEAD for a file's metadata reads the Hub's own headers, not a CDN's: huggingface_hub's way)
          if (req.crossOrigin === false && next.origin !== origin) return resolve(res);
          return go(next, hops + 1);
        }
        resolve(res);
      });
      // an idle connection (no bytes for a minute) is an error, retried like a dropped one
      const idle = req.idleTimeoutMs ?? 60_000;
      r.setTimeout(idle, () => {
        const span = idle < 1000 ? `${idle} ms` : `${Math.round(idle / 1000)} s`;
        const err = Object.assign(new Error(`no data for ${span}`), { code: 'ETIMEDOUT' });
        // once the body has begun, its reader must get this error, not the bare "aborted" of the request
        if (response) response.destroy(err);
        r.destroy(err);
      });
      r.on('error', (e: NodeJS.ErrnoException) => {
        const msg = `${req.what}: could not reach ${url.host} (${e.message}); check the network connection or HF_ENDPOINT`;
        reject(Object.assign(new Error(msg), { code: e.code }));
      });
      r.end();
    };
    go(new URL(req.url), 0);
  });
}

/** A header's first value. */
const header = (headers: http.IncomingHttpHeaders, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Turns an error status into a HubError with advice; undefined for success. `headers`: the response's
 * (Retry-After; X-Error-Code and X-Error-Message, which the Hub sets: a repo that does not exist is a
 * 401 RepoNotFound to a client without a token). `tokenSent`: whether the request carried a token (a
 * private repo is not found either way, for another reason).
 */
export function statusError(status: number, what: string, url: string, headers: http.IncomingHttpHeaders, tokenSent: boolean): HubError | undefined {
  if (status < 400) return undefined;
  const code = header(headers, 'x-error-code');
  const said = header(headers, 'x-error-message');
  const hub = said ? ` The Hub says: ${JSON.stringify(said.slice(0, 300))}` : '';
  if (code === 'RepoNotFound' || code === 'RevisionNotFound' || code === 'EntryNotFound') {
    return new HubError(
      `${what} was not found (HTTP ${status}, ${code}): check the name, the revision and --repo-type ` +
        `(${tokenSent ? 'a private repo is not found when the token sent cannot read it: set HF_TOKEN to one that can' : 'a private repo is not found without HF_TOKEN set to a token that can read it'}).${hub}`,
      status,
    );
  }
  if (status === 401 || status === 403) {
    return new HubError(
      `access to ${what} was refused (HTTP ${status}): the repo is private or gated, or the token lacks access` +
        `${status === 401 && code === undefined ? ', or it does not exist (check the name and --repo-type)' : ''}. ` +
        `Set HF_TOKEN to a Hugging Face token that can read it (and accept the repo terms on the website if it is gated).${hub}`,
      status,
    );
  }
  if (status === 404) return new HubError(`${what} was not found (HTTP 404, ${url}): check the name, the revision and --repo-type${hub}`, status);
  if (status === 416) return new HubError(`${what}: the server refused the byte range (HTTP 416)`, status);
  const after = retryAfterSeconds(headers['retry-after']);
  if (status === 429) return new HubError(`${what}: too many requests (HTTP 429 from ${url})${after !== undefined ? `, retry after ${after} s` : ''}`, status, after);
  return new HubError(`${what}: HTTP ${status} from ${url}`, status, after);
}

/** Retry-After as seconds: a number of seconds or an HTTP date; undefined when absent or unreadable. */
function retryAfterSeconds(v: string | string[] | undefined): number | undefined {
  const text = Array.isArray(v) ? v[0] : v;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - Date.now()) / 1000)) : undefined;
}

export function isRetryable(err: unknown): boolean {
  if (err instanceof HubError) return err.status !== undefined && (err.status >= 500 || err.status === 429);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'PARTIAL'].includes(code ?? '');
}

/** Runs `fn` until it succeeds or fails with a non-retryable error or runs out of attempts. */
export async function withRetries<T>(what: string, policy: RetryPolicy, fn: () => Promise<T>): Promise<T> {
  const attempts = Math.max(1, policy.attempts ?? 4);
  let delay = policy.delayMs ?? 500;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const after = err instanceof HubError ? err.retryAfter : undefined;
      // the reason, without the `what` it starts with (said once, in front)
      const reason = (): string => {
        const m = err instanceof Error ? err.message : String(err);
        return m.startsWith(`${what}: `) ? m.slice(what.length + 2) : m;
      };
      if (isRetryable(err) && after !== undefined && after > MAX_RETRY_AFTER_S) {
        const msg = reason();
        throw new HubError(`${what}: the server asks to wait ${after} s before trying again (${msg}); try again later`, (err as HubError).status);
      }
      if (!isRetryable(err) || i >= attempts) {
        if (isRetryable(err)) {
          const msg = reason();
          const why = (err as HubError).status === 429 ? 'the Hub is limiting requests' : 'the Hub may be down';
          throw new HubError(`${what}: failed after ${counted(attempts, 'attempt')} (${msg}); ${why}, try again later`, (err as HubError).status);
        }
        throw err;
      }
      policy.onRetry?.(what, reason(), i + 1, attempts);
      await new Promise((r) => setTimeout(r, Math.max(delay, (after ?? 0) * 1000)));
      delay *= 2;
    }
  }
}

/** GET a JSON document. */
export async function getJson(req: HubRequest, policy: RetryPolicy = {}): Promise<unknown> {
  return withRetries(req.what, policy, async () => {
    const res = await openUrl(req);
    const err = statusError(res.statusCode ?? 0, req.what, req.url, res.headers, Boolean(req.token));
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    if (err) throw err;
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch {
      throw new HubError(`${req.what}: the Hub answered with something that is not JSON (${req.url})`);
    }
  });
}
