import type { IncomingMessage, ServerResponse } from 'node:http';
import { CoordinatorError, type ErrorCode } from '../errors/coordinator-error';

/**
 * Whether the request still has body bytes nobody read. Answering such a request must close the
 * connection: otherwise Node reads and discards the rest of the body to keep the connection alive,
 * which lets a client make the coordinator swallow an arbitrarily long upload.
 */
export function bodyUnread(req: IncomingMessage): boolean {
  const hasBody =
    Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  return hasBody && !req.readableEnded;
}

/** Bytes of a refused body read and thrown away after the answer, so the client sees it. */
const LINGER_BYTES = 256 * 1024;
/** How long a connection with a refused body stays open after the answer. */
const LINGER_MS = 2000;

/**
 * After refusing a request whose body was not read: sends the answer, half-closes the connection
 * (no further requests on it) and reads and discards what the client is still sending, at most
 * 256 KiB for at most two seconds, until the client closes. Closing at once would make the kernel
 * reset the connection and the client could lose the answer; Node's own handling would read the
 * whole body (unbounded) to keep the connection.
 */
function lingerThenClose(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    if (req.readableEnded) return;
    const socket = req.socket;
    let left = LINGER_BYTES;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once('close', () => clearTimeout(timer));
    req.on('data', (d: Buffer) => {
      left -= d.length;
      if (left < 0) socket.destroy();
    });
    req.resume();
    socket.end();
  });
}

/**
 * Writes the one error shape of the API, `{ code, message }`, with the code's status; a body that
 * was not read is not read beyond a small lingering allowance (see lingerThenClose).
 */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  const status = new CoordinatorError(code, message).httpStatus;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ code, message });
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (bodyUnread(req)) lingerThenClose(req, res);
  res.end(body);
}
