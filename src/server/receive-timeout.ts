// Requests not received in full within requestTimeoutMs. Node finds them itself, on a sweep of the
// server's connections every connectionsCheckingInterval (30 s by default: sweepMs sets it), but stops
// sweeping at close(): a client stalled mid-request then held a closing server open forever. So a
// closing server sweeps them here, and answers each as Node's sweep does (a 'clientError' with
// ERR_HTTP_REQUEST_TIMEOUT: the server's handler writes the 408 and closes the connection).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** How often receiving is checked against the timeout: a quarter of it, 50 ms to 1 s. */
export function sweepMs(timeoutMs: number): number {
  return Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4)));
}

/**
 * Follows what each connection of `server` is receiving, and since when: a request whose body is
 * coming (from its headers), or the next request's headers (from the connection, or its last answer).
 * `sweepWhileClosing()` starts the sweep; the function it returns stops it.
 */
export function watchReceiving(server: Server, timeoutMs: number): { sweepWhileClosing(): () => void } {
  const receiving = new WeakMap<Duplex, { req: IncomingMessage | null; since: number }>();
  const sockets = new Set<Duplex>();
  server.on('connection', (socket: Duplex) => {
    sockets.add(socket);
    receiving.set(socket, { req: null, since: Date.now() });
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    receiving.set(req.socket, { req, since: Date.now() });
    res.once('finish', () => {
      if (res.socket) receiving.set(res.socket, { req: null, since: Date.now() });
    });
  });
  const sweep = (): void => {
    const now = Date.now();
    for (const socket of sockets) {
      const r = receiving.get(socket);
      if (!r || r.req?.complete || now - r.since < timeoutMs) continue;
      server.emit('clientError', Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket);
    }
  };
  return {
    sweepWhileClosing() {
      const timer = setInterval(sweep, sweepMs(timeoutMs));
      return () => clearInterval(timer);
    },
  };
}
