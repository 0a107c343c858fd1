import { createHash } from 'node:crypto';
import { parseMaskedTransferId, socketParser } from '@fedsynth/protocol';
import type { Socket } from 'socket.io-client';
import { PacketType } from 'socket.io-parser';
import type { AuditLog } from '../audit/audit-log';

type Frame = Uint8Array;

/** The exact websocket payloads of one socket.io packet: '4' + text for the header, raw bytes for attachments. */
function framesOf(encoded: (string | Uint8Array | ArrayBuffer)[]): Frame[] {
  return encoded.map((e) =>
    typeof e === 'string'
      ? new Uint8Array(Buffer.from(`4${e}`, 'utf8'))
      : e instanceof ArrayBuffer
        ? new Uint8Array(e)
        : new Uint8Array(e.buffer, e.byteOffset, e.byteLength),
  );
}

function digest(frames: Frame[]): { bytes: number; sha256: string } {
  const h = createHash('sha256');
  let bytes = 0;
  for (const f of frames) {
    h.update(f);
    bytes += f.byteLength;
  }
  return { bytes, sha256: h.digest('hex') };
}

/** The round a payload belongs to, from its roundId or its masked upload's transferId. */
export function roundOf(payload: unknown): string | null {
  if (!payload || typeof payload !== 'object') return null;
  const p = payload as { roundId?: unknown; transferId?: unknown };
  if (typeof p.roundId === 'string') return p.roundId;
  if (typeof p.transferId === 'string') return parseMaskedTransferId(p.transferId)?.roundId ?? null;
  return null;
}

/**
 * Every message the agent sends goes through here: it is encoded exactly as socket.io will put it on
 * the wire, written to the audit log (type, bytes, sha256, round), and only then emitted. A hook on
 * the transport checks each outgoing packet against what was logged; a packet the library sends by
 * itself (the namespace connect) is logged when it is created, so the log is a complete account of
 * what left the site over this connection.
 */
export class AuditedSocket {
  private readonly expected: { sha256: string }[] = [];
  private readonly encoder = new socketParser.Encoder();

  constructor(
    readonly socket: Socket,
    private readonly audit: AuditLog,
  ) {
    socket.io.on('open', () => this.hookEngine());
  }

  private hookEngine(): void {
    const engine = (this.socket.io as unknown as { engine: NodeJS.EventEmitter }).engine;
    const decoder = new socketParser.Decoder();
    let frames: Frame[] = [];
    decoder.on('decoded', (packet: { type: PacketType; data?: unknown[] }) => {
      const d = digest(frames);
      frames = [];
      const i = this.expected.findIndex((e) => e.sha256 === d.sha256);
      if (i >= 0) {
        this.expected.splice(i, 1);
        return;
      }
      const type =
        packet.type === PacketType.CONNECT
          ? 'socket.connect'
          : packet.type === PacketType.DISCONNECT
            ? 'socket.disconnect'
            : packet.type === PacketType.ACK || packet.type === PacketType.BINARY_ACK
              ? 'socket.ack'
              : String(packet.data?.[0] ?? 'unknown');
      this.audit.recordDigest(type, d.bytes, d.sha256, roundOf(packet.data?.[1]));
    });
    engine.on('packetCreate', (p: { type: string; data?: string | Uint8Array | ArrayBuffer }) => {
      if (p.type !== 'message' || p.data === undefined) return; // engine keepalives carry nothing
      frames.push(...framesOf([p.data]));
      decoder.add(p.data as never);
    });
  }

  /** Logs and sends one message. */
  emit(event: string, payload: unknown): void {
    this.log(event, payload, undefined);
    this.socket.emit(event, payload);
  }

  /**
   * Logs and sends one message that the coordinator acknowledges; rejects on refusal, disconnect or
   * timeout. `note.inside` names figures masked inside the message (written to its audit entry).
   */
  emitWithAck(
    event: string,
    payload: unknown,
    timeoutMs = 60_000,
    note?: { inside: readonly string[] },
  ): Promise<{ ok: true }> {
    if (!this.socket.connected) return Promise.reject(new Error(`not connected; ${event} not sent`));
    return new Promise((resolve, reject) => {
      const id = (this.socket as unknown as { ids: number }).ids;
      this.log(event, payload, id, note?.inside);
      const timer = setTimeout(
        () => reject(new Error(`${event}: no acknowledgement in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onDisconnect = () => {
        clearTimeout(timer);
        reject(new Error(`disconnected before ${event} was acknowledged`));
      };
      this.socket.once('disconnect', onDisconnect);
      this.socket.emit(event, payload, (r: { ok: boolean; code?: string; message?: string }) => {
        clearTimeout(timer);
        this.socket.off('disconnect', onDisconnect);
        if (r?.ok) resolve({ ok: true });
        else reject(new Error(`${event} refused: ${r?.code ?? 'ERROR'} ${r?.message ?? ''}`.trim()));
      });
    });
  }

  private log(event: string, payload: unknown, id: number | undefined, inside?: readonly string[]): void {
    const packet = {
      type: PacketType.EVENT,
      nsp: (this.socket as unknown as { nsp: string }).nsp,
      data: [event, payload],
      ...(id === undefined ? {} : { id }),
    };
    const d = digest(framesOf(this.encoder.encode(packet)));
    this.audit.recordDigest(event, d.bytes, d.sha256, roundOf(payload), { inside });
    this.expected.push({ sha256: d.sha256 });
    if (this.expected.length > 10_000) this.expected.shift();
  }
}
