import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';
import type { BoundarySettings } from '../http/boundary-settings';

/** Caps on connections that have not logged in yet. */
export interface ConnectionCaps {
  /** Unauthenticated connections at once, from everywhere. */
  unauthenticatedTotal: number;
  /** Unauthenticated connections at once from one client address. */
  unauthenticatedPerAddress: number;
}

/** Express's `trust proxy` setting as the function proxy-addr takes. */
function trustFunction(trust: BoundarySettings['trustProxy']): (addr: string, i: number) => boolean {
  if (trust === true) return () => true;
  if (trust === false) return () => false;
  if (typeof trust === 'number') return (_addr, i) => i < trust;
  return proxyaddr.compile(trust.split(',').map((s) => s.trim()));
}

/**
 * Counts the connections that have not logged in, in total and per client address (the same
 * address Express computes for HTTP, honouring the trusted proxies), and refuses new ones beyond
 * the caps: logging in takes one round trip, so a client holding many unauthenticated
 * connections open is attacking, not logging in.
 */
export class ConnectionGuard {
  private total = 0;
  private readonly byAddress = new Map<string, number>();
  private readonly trust: (addr: string, i: number) => boolean;

  constructor(
    private readonly caps: ConnectionCaps,
    trustProxy: BoundarySettings['trustProxy'],
  ) {
    this.trust = trustFunction(trustProxy);
  }

  /** The client address of a connection request. */
  address(req: IncomingMessage): string {
    return proxyaddr(req as Parameters<typeof proxyaddr>[0], this.trust);
  }

  /** Why a new connection from this request is refused now, or null when it may connect. */
  refusal(req: IncomingMessage): string | null {
    if (this.total >= this.caps.unauthenticatedTotal)
      return `the coordinator holds ${this.total} connections that have not logged in; try again shortly`;
    const a = this.address(req);
    if ((this.byAddress.get(a) ?? 0) >= this.caps.unauthenticatedPerAddress)
      return `too many connections from ${a} that have not logged in`;
    return null;
  }

  /**
   * Counts a new connection as unauthenticated; the returned function takes it off the count (at
   * login or when it closes, whichever comes first; calling it again does nothing).
   */
  admit(address: string): () => void {
    this.total++;
    this.byAddress.set(address, (this.byAddress.get(address) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.byAddress.get(address) ?? 1) - 1;
      if (n > 0) this.byAddress.set(address, n);
      else this.byAddress.delete(address);
    };
  }

  /** Unauthenticated connections now (for /metrics and tests). */
  get unauthenticated(): number {
    return this.total;
  }
}
