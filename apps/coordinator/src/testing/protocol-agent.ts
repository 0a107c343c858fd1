import {
  type AgentMessageName,
  type EvaluationReport,
  ParticipantSession,
  type ParticipantTransport,
  SERVER_TO_AGENT,
  type SecAggClientOptions,
  type SiteFigures,
  socketParser,
} from '@fedsynth/protocol';
import { type AdvertiseKeysMessage, SecAggClient } from '@fedsynth/secure-agg';
import { io, type Socket } from 'socket.io-client';
import nacl from 'tweetnacl';

/**
 * A participant session's transport over a socket.io client socket: acknowledged messages reject
 * when the coordinator refuses them, the connection drops, or no acknowledgement comes in time.
 */
export function socketTransport(socket: Socket): ParticipantTransport {
  return {
    send: (event, payload) => void socket.emit(event, payload),
    sendWithAck: (event, payload, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        if (!socket.connected) return reject(new Error(`not connected; ${event} not sent`));
        const timer = setTimeout(() => {
          socket.off('disconnect', onDisconnect);
          reject(new Error(`${event}: no acknowledgement in ${timeoutMs} ms`));
        }, timeoutMs);
        const onDisconnect = () => {
          clearTimeout(timer);
          reject(new Error(`disconnected before ${event} was acknowledged`));
        };
        socket.once('disconnect', onDisconnect);
        socket.emit(event, payload, (r: { ok: boolean; code?: string; message?: string }) => {
          clearTimeout(timer);
          socket.off('disconnect', onDisconnect);
          if (r?.ok) resolve();
          else reject(new Error(`${event} refused: ${r?.code ?? 'ERROR'} ${r?.message ?? ''}`.trim()));
        });
      }),
  };
}

/** Hands every coordinator message the socket receives to the session (which validates it). */
export function attachSession(socket: Socket, session: ParticipantSession): void {
  for (const event of SERVER_TO_AGENT) socket.on(event, (raw: unknown) => void session.receive(event, raw));
}

/** The stage whose answer each outbound message is (what `dropAt` names). */
const STAGE_OF: Partial<Record<AgentMessageName, string>> = {
  'secagg.advertise': 'advertise-keys',
  'secagg.shares': 'share-keys',
  'round.train-report': 'masked-input',
  'secagg.masked-chunk': 'masked-input',
  'secagg.consistency': 'consistency-check',
  'secagg.unmask': 'unmask',
};

/** A SecAggClient whose key advert is made by a test script from the real one (e.g. with forged keys). */
class ScriptedAdvert extends SecAggClient {
  constructor(
    options: SecAggClientOptions,
    private readonly script: (client: SecAggClient) => unknown,
  ) {
    super(options);
  }

  override advertiseKeys(): AdvertiseKeysMessage {
    // The script sees this client, with advertiseKeys() the real one (it calls it to start from).
    const real = Object.assign(Object.create(this) as SecAggClient, {
      advertiseKeys: () => super.advertiseKeys(),
    });
    return this.script(real) as AdvertiseKeysMessage;
  }
}

/**
 * A protocol-level site for tests (the real agent is apps/site-agent): libs/protocol's
 * ParticipantSession over socket.io, with a synthetic delta and weight for "training" (after it has
 * fetched the round's model by hash) and a report derived from its weight for evaluation.
 * `dropAt` makes it disconnect instead of sending its answer of that stage.
 */
export function startAgent(
  url: string,
  kp: nacl.SignKeyPair,
  delta: Float32Array,
  weight: number,
  opts: {
    dropAt?: string;
    /**
     * Awaited once the coordinator asks for the masked input, before the training report and the
     * upload; given the round's number.
     */
    beforeMaskedInput?: (roundNumber: number) => Promise<void>;
    /** The coordinator key pinned at enrollment; without it round starts are not checked. */
    coordinatorKey?: Uint8Array;
    /** Replaces the signed key advert (e.g. with forged keys). */
    advertise?: (client: SecAggClient) => unknown;
    /** Replaces the evaluation report; null sends none. */
    evalReport?: (m: { roundId: string; modelHash: string }) => Record<string, unknown> | null;
    /** Awaited before the evaluation report is sent. */
    beforeEval?: () => Promise<void>;
    /** The figures "training" gives, for rounds that ask for them inside the masked vector. */
    figures?: SiteFigures;
    /** The control variate "training" gives in SCAFFOLD rounds (as sent: scaled). */
    control?: Float32Array;
    /** Told, in SCAFFOLD rounds, the global control variate the round offered (null: none). */
    onControl?: (roundNumber: number, bytes: Uint8Array | null) => void;
  } = {},
): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = io(url, { transports: ['websocket'], reconnection: false, parser: socketParser });
    const wire = socketTransport(socket);
    const dropsAt = (event: AgentMessageName) => {
      if (!opts.dropAt || STAGE_OF[event] !== opts.dropAt) return false;
      socket.disconnect();
      return true;
    };
    // Local training "ends" when the masked-input stage begins, so beforeMaskedInput runs then.
    const inboxes = new Map<string, { arrived: Promise<void>; arrive: () => void }>();
    const inboxOf = (roundId: string) => {
      let e = inboxes.get(roundId);
      if (!e) {
        let arrive: () => void = () => undefined;
        const arrived = new Promise<void>((r) => {
          arrive = r;
        });
        e = { arrived, arrive };
        inboxes.set(roundId, e);
      }
      return e;
    };
    socket.on('secagg.inbox', (raw: { roundId?: unknown }) => {
      if (typeof raw?.roundId === 'string') inboxOf(raw.roundId).arrive();
    });
    const session = new ParticipantSession({
      identity: kp,
      coordinatorKey: opts.coordinatorKey ?? null,
      agentVersion: 'test',
      transport: {
        send: (event, payload) => {
          if (!dropsAt(event)) wire.send(event, payload);
        },
        sendWithAck: (event, payload, timeoutMs) =>
          dropsAt(event)
            ? Promise.reject(new Error(`dropped at ${opts.dropAt}`))
            : wire.sendWithAck(event, payload, timeoutMs),
      },
      train: async (start, model, _cancelled, control) => {
        // A real site trains here from the checkpoint it fetched: it must arrive intact.
        if ((await model()).length === 0) throw new Error('empty checkpoint');
        if (start.plan.scaffold) opts.onControl?.(start.roundNumber, control ? await control() : null);
        await inboxOf(start.secAgg.roundId).arrived;
        await opts.beforeMaskedInput?.(start.roundNumber);
        // epsilon stands in for a DP accountant: distinct per site.
        return {
          delta,
          weight,
          report: { loss: 0.25, steps: 10, epsilon: weight / 100 },
          ...(opts.figures ? { figures: opts.figures } : {}),
          ...(opts.control ? { control: opts.control } : {}),
        };
      },
      evaluate: async (m) => {
        await opts.beforeEval?.();
        // A site scores the new model on its validation split; here a figure derived from its weight.
        const report = opts.evalReport
          ? opts.evalReport(m)
          : { mae: 50 + weight / 10, psnr: 30, ssim: 0.9, count: weight };
        return report as EvaluationReport | null;
      },
      createClient: (o) => (opts.advertise ? new ScriptedAdvert(o, opts.advertise) : new SecAggClient(o)),
    });
    attachSession(socket, session);
    socket.on('auth.ok', () => resolve(socket));
  });
}
