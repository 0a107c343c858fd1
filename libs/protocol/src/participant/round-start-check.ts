import { ed25519Verify, type RoundConfig, SecAggClient, sessionId } from '@fedsynth/secure-agg';
import { type Message, roundStartPayload, roundTask, trainingPlan } from '../schemas';
import { layoutProblem } from '../secure-metrics';

/** A validated `round.start` message. */
export type RoundStart = Message<'round.start'>;

/** The options SecAggClient is made with. */
export type SecAggClientOptions = ConstructorParameters<typeof SecAggClient>[0];

/** What a site checks in a round start before it takes part: its SecAgg client, or why not. */
export type RoundStartCheck =
  | { ok: true; config: RoundConfig; client: SecAggClient }
  | { ok: false; reason: string };

/** The round's secure-aggregation configuration, with its binary fields copied out of the message. */
export function roundConfigOf(start: RoundStart): RoundConfig {
  const s = start.secAgg;
  return {
    ...s,
    participants: s.participants.map((p) => ({ ...p, identityKey: new Uint8Array(p.identityKey) })),
    graph: s.graph.kind === 'harary' ? { ...s.graph, seed: new Uint8Array(s.graph.seed) } : s.graph,
    quantization: { ...s.quantization },
  };
}

/**
 * Checks a round start on the site's side: the coordinator's Ed25519 signature over
 * roundStartPayload with the key the site pinned at enrollment (null skips this check: protocol
 * tests only), that the site's identity key is among the participants, that the
 * secure-aggregation configuration is valid (SecAggClient refuses any other), and that the site
 * can fill the figure slots the round asks for in its masked vector (secure-metrics.ts), and that
 * the plan asks for nothing this version does not know.
 *
 * @param identity the site's Ed25519 identity (tweetnacl layout: the 64-byte secret key ends with the public key)
 * @returns the SecAgg client for the round, or the reason to decline it
 */
export function checkRoundStart(
  start: RoundStart,
  identity: { publicKey: Uint8Array; secretKey: Uint8Array },
  coordinatorKey: Uint8Array | null,
  createClient: (options: SecAggClientOptions) => SecAggClient = (o) => new SecAggClient(o),
): RoundStartCheck {
  const config = roundConfigOf(start);
  let session: Uint8Array;
  try {
    session = sessionId(config);
  } catch (err) {
    return { ok: false, reason: `invalid secure-aggregation parameters: ${(err as Error).message}` };
  }
  if (coordinatorKey) {
    const { signature, ...signed } = start;
    if (!ed25519Verify(coordinatorKey, roundStartPayload(session, signed), new Uint8Array(signature)))
      return { ok: false, reason: 'round start not signed by the coordinator key pinned at enrollment' };
  }
  for (const [what, given, known] of [
    ['plan', start.plan, trainingPlan.shape],
    ['task', start.task, roundTask.shape],
  ] as const) {
    const unknown = Object.keys(given).filter((k) => !(k in known));
    if (unknown.length > 0)
      return {
        ok: false,
        reason: `the round's ${what} has settings this agent does not know (${unknown
          .slice(0, 5)
          .map((k) => k.slice(0, 40))
          .join(', ')}): upgrade the agent to take part`,
      };
  }
  const me = config.participants.find((p) =>
    Buffer.from(p.identityKey).equals(Buffer.from(identity.publicKey)),
  );
  if (!me) return { ok: false, reason: 'this site is not among the round participants' };
  if (start.plan.scaffold && (config.vectorLength - (start.metrics?.length ?? 0)) % 2 !== 0)
    return {
      ok: false,
      reason: `a SCAFFOLD round's vector holds the update and the control variate, two equal halves; ${config.vectorLength - (start.metrics?.length ?? 0)} values cannot be split`,
    };
  if (start.metrics) {
    const problem = layoutProblem(start.metrics, config.vectorLength);
    if (problem)
      return {
        ok: false,
        reason: `cannot send the figures the round asks for in the masked vector: ${problem}`,
      };
  }
  try {
    const client = createClient({ config, selfIndex: me.index, identitySecretKey: identity.secretKey });
    return { ok: true, config, client };
  } catch (err) {
    return { ok: false, reason: `invalid secure-aggregation parameters: ${(err as Error).message}` };
  }
}
