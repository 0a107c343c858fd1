/**
 * How a round reaches its participants, by their index in the round: over the agents' socket.io
 * gateway in the coordinator, or in memory in protocol-level tests. Inbound messages go the other
 * way through SecureRound's receive methods.
 */
export interface RoundTransport {
  /** Sends a message to participant `index` (nothing happens when it is gone). */
  send(index: number, event: string, payload: unknown): void;
  /** Whether participant `index` is still reachable. */
  connected(index: number): boolean;
}

/** A transport over links by index (the gateway's agent sessions). */
export function linkTransport(
  links: ReadonlyMap<number, { emit(event: string, payload: unknown): unknown; readonly connected: boolean }>,
): RoundTransport {
  return {
    send: (index, event, payload) => void links.get(index)?.emit(event, payload),
    connected: (index) => links.get(index)?.connected ?? false,
  };
}
