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

/**
 * Writes the one error shape of the API, `{ code, message }`, with the code's status; closes the
 * connection when the body was not read.
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
  if (bodyUnread(req)) res.setHeader('Connection', 'close');
  res.end(body);
}
