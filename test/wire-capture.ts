import { createHash } from 'node:crypto';
import { createConnection, createServer, type Server } from 'node:net';
import { socketParser } from '@fedsynth/protocol';

/** Everything one client sent over one TCP connection, in order. */
export interface CapturedConnection {
  chunks: Buffer[];
}

/**
 * A loopback TCP proxy that forwards to a target port and keeps every byte the client sent: the
 * test's view of what left a site, independent of the agent's own bookkeeping.
 */
export class WireCapture {
  readonly connections: CapturedConnection[] = [];
  private server: Server | null = null;
  port = 0;

  constructor(private readonly targetPort: () => number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      const conn: CapturedConnection = { chunks: [] };
      this.connections.push(conn);
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort() });
      client.on('data', (d) => {
        conn.chunks.push(Buffer.from(d));
        upstream.write(d);
      });
      upstream.on('data', (d) => client.write(d));
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server!.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    await new Promise((r) => this.server?.close(r));
  }

  /** All bytes the client sent, over every connection. */
  allBytes(): Buffer {
    return Buffer.concat(this.connections.flatMap((c) => c.chunks));
  }
}

/** An HTTP request with its body, as sent. */
export interface HttpRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** A socket.io packet as it crossed the wire: its websocket payloads and what they decode to. */
export interface WireMessage {
  frames: Buffer[];
  bytes: number;
  sha256: string;
  /** socket.io packet type digit (0 connect, 1 disconnect, 2 event, 3 ack, 5 binary event, 6 binary ack). */
  packetType: number;
  header: string;
}

/** Splits one connection's bytes into its HTTP requests and, after an upgrade, websocket frames. */
export function parseConnection(data: Buffer): {
  requests: HttpRequest[];
  frames: { opcode: number; payload: Buffer }[];
} {
  const requests: HttpRequest[] = [];
  const frames: { opcode: number; payload: Buffer }[] = [];
  let o = 0;
  let upgraded = false;
  while (o < data.length && !upgraded) {
    const end = data.indexOf('\r\n\r\n', o);
    if (end < 0) throw new Error(`incomplete HTTP request at byte ${o}`);
    const head = data.subarray(o, end).toString('latin1').split('\r\n');
    const [method, path] = head[0].split(' ');
    const headers: Record<string, string> = {};
    for (const h of head.slice(1)) {
      const i = h.indexOf(':');
      headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    if (headers['transfer-encoding']) throw new Error('chunked request bodies are not expected');
    requests.push({ method, path, headers, body: data.subarray(end + 4, end + 4 + len) });
    o = end + 4 + len;
    upgraded = (headers.upgrade ?? '').toLowerCase() === 'websocket';
  }
  let partial: { opcode: number; parts: Buffer[] } | null = null;
  while (upgraded && o < data.length) {
    const b0 = data[o];
    const b1 = data[o + 1];
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (!(b1 & 0x80)) throw new Error('a client websocket frame must be masked');
    let len = b1 & 0x7f;
    let p = o + 2;
    if (len === 126) {
      len = data.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      len = Number(data.readBigUInt64BE(p));
      p += 8;
    }
    const mask = data.subarray(p, p + 4);
    p += 4;
    if (p + len > data.length) break; // cut off by a kill: the rest never fully left
    const payload = Buffer.alloc(len);
    for (let i = 0; i < len; i++) payload[i] = data[p + i] ^ mask[i & 3];
    o = p + len;
    if (opcode === 0) {
      partial?.parts.push(payload);
    } else partial = { opcode, parts: [payload] };
    if (fin && partial) {
      frames.push({ opcode: partial.opcode, payload: Buffer.concat(partial.parts) });
      partial = null;
    }
  }
  return { requests, frames };
}

/**
 * Groups websocket frames into socket.io packets: a text frame '4<packet>' (engine.io message)
 * followed by as many binary frames as the packet announces. Engine.io keepalives ('3' pong) and
 * close frames are returned separately.
 */
export function groupMessages(frames: { opcode: number; payload: Buffer }[]): {
  messages: WireMessage[];
  control: string[];
} {
  const messages: WireMessage[] = [];
  const control: string[] = [];
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    if (f.opcode === 8) {
      control.push('close');
      continue;
    }
    if (f.opcode !== 1) throw new Error(`binary frame ${i} outside a socket.io packet`);
    const text = f.payload.toString('utf8');
    if (text[0] !== '4') {
      control.push(`engine.io ${text}`);
      continue;
    }
    const packet = text.slice(1);
    const type = Number(packet[0]);
    let attachments = 0;
    if (type === 5 || type === 6) attachments = Number(/^\d(\d+)-/.exec(packet)![1]);
    const group = [f.payload, ...frames.slice(i + 1, i + 1 + attachments).map((x) => x.payload)];
    if (group.length !== attachments + 1) break; // cut off
    i += attachments;
    const h = createHash('sha256');
    for (const g of group) h.update(g);
    messages.push({
      frames: group,
      bytes: group.reduce((n, g) => n + g.length, 0),
      sha256: h.digest('hex'),
      packetType: type,
      header: packet.slice(0, 200),
    });
  }
  return { messages, control };
}

/** Every socket.io event a captured client sent, decoded: its name and payload. */
export function sentEvents(capture: WireCapture): { event: string; payload: unknown }[] {
  const out: { event: string; payload: unknown }[] = [];
  for (const conn of capture.connections) {
    const { frames } = parseConnection(Buffer.concat(conn.chunks));
    for (const m of groupMessages(frames).messages) {
      if (m.packetType !== 2 && m.packetType !== 5) continue;
      const decoder = new socketParser.Decoder();
      let packet: { data?: unknown[] } | undefined;
      decoder.on('decoded', (p: typeof packet) => {
        packet = p;
      });
      decoder.add(m.frames[0].subarray(1).toString('utf8'));
      for (const b of m.frames.slice(1)) decoder.add(b);
      const [event, payload] = (packet?.data ?? []) as [string, unknown];
      out.push({ event, payload });
    }
  }
  return out;
}
