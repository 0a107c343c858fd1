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
const LINGER_BYTES = 64 * 1024;
/** How long a connection with a refused body stays open after the answer. */
const LINGER_MS = 2000;

/**
 * Stops reading the connection of `req` at once. Pausing the request is not enough: the HTTP
 * parser then still takes in up to the request's high-water mark plus one socket read (about
 * 130 KiB on Node 22 and later) and keeps it buffered until the connection closes, and pausing
 * the socket does nothing once the parser consumes it directly. Under a flood of refused uploads
 * those buffers were most of the coordinator's memory growth (the HTTP boundary test on Node 24:
 * ArrayBuffers in use peaked 54 MB above the start, RSS 77-85 MB; with the read stopped 26 MB and
 * 42-45 MB; on Node 20 RSS 44 MB before, 32 MB after). The connection's stream handle (TCP or
 * TLS) stops reading; without one, the request is paused.
 */
function stopReading(req: IncomingMessage): void {
  const handle = (req.socket as { _handle?: { readStop?: () => number } } | null)?._handle;
  if (typeof handle?.readStop === 'function') handle.readStop();
  else req.pause();
}

/**
 * For a request refused before its body was read: reads and discards what the client is still
 * sending, at most 64 KiB, so that a client which sends its whole body before reading the answer
 * can finish a small one; past that the coordinator stops reading and TCP flow control holds the
 * client back. Once the answer is out the connection is half-closed (no further requests on it)
 * and destroyed two seconds later, or earlier when the client closes.
 *
 * The reader is attached before the answer is sent: a request nobody reads by then is "dumped"
 * by Node when the answer finishes, which discards the rest of the body at full speed and without
 * flow control for as long as the connection lives. Destroying the connection as soon as the
 * allowance is spent would reset it while a busy client has not yet read the answer, and a reset
 * discards what it had received.
 */
function lingerThenClose(req: IncomingMessage, res: ServerResponse): void {
  let left = LINGER_BYTES;
  const socket = req.socket;
  req.on('data', (d: Buffer) => {
    left -= d.length;
    if (left < 0) stopReading(req);
  });
  req.resume();
  // The answer carries `Connection: close`, after which Node destroys the connection as soon as
  // the answer is written (its destroySoon). With unread bytes still arriving that sends a reset,
  // and a client that has not yet read the answer loses it; so this connection only half-closes
  // there and is destroyed by the timer below or when the client closes.
  Object.assign(socket, { destroySoon: () => socket.end() });
  res.once('finish', () => {
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once('close', () => clearTimeout(timer));
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
  if (bodyUnread(req)) {
    // Tells the client not to send another request on this connection: it closes after this.
    res.setHeader('Connection', 'close');
    lingerThenClose(req, res);
  }
  res.end(body);
}
