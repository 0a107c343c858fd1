import type { ApiRole } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import type { FederationService } from '../federations/federation-service';
import type { ApiTokenInfo, ApiTokenService } from './api-tokens';

/** The longest a token may be made to live: five years. */
export const MAX_TOKEN_HOURS = 8760 * 5;

/** A token as an admin asks for it (REST body or CLI flags). */
export interface TokenRequest {
  role: ApiRole;
  label?: string;
  /** Hours until it expires; absent: never. */
  expiresInHours?: number;
  /** Federations by id or name; absent: every federation. */
  federations?: string[];
}

/** A token as admins see it: its federations by name, never its secret or hash. */
export interface TokenListing extends Omit<ApiTokenInfo, 'federationIds'> {
  /** Names of the federations it is limited to (the id of one that no longer exists); null: all. */
  federations: string[] | null;
}

/**
 * Token management as the REST API and the CLI offer it: federations named by id or name, expiry in
 * hours, listings with federation names. The tokens themselves are ApiTokenService's.
 */
export class TokenAdmin {
  constructor(
    private readonly tokens: ApiTokenService,
    private readonly federations: FederationService,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Creates a token (its secret is in the answer, and only there). */
  async create(
    req: TokenRequest,
    createdBy?: string,
  ): Promise<{
    id: string;
    token: string;
    role: ApiRole;
    label: string;
    expiresAt: Date | null;
    federations: string[] | null;
  }> {
    const hours = req.expiresInHours;
    if (hours !== undefined && !(hours > 0 && hours <= MAX_TOKEN_HOURS))
      throw new CoordinatorError(
        ErrorCode.INVALID_INPUT,
        `expiresInHours must be in (0, ${MAX_TOKEN_HOURS}], got ${hours}`,
      );
    // Each reference resolved on its own, so an unknown one is named (NOT_FOUND: no federation "x").
    const feds = req.federations && (await Promise.all(req.federations.map((f) => this.federations.get(f))));
    const label = req.label ?? '';
    const t = await this.tokens.create(req.role, label, {
      expiresAt: hours === undefined ? undefined : new Date(this.now().getTime() + hours * 3600_000),
      federationIds: feds?.map((f) => f.id),
      createdBy,
    });
    return {
      id: t.id,
      token: t.token,
      role: t.role,
      label,
      expiresAt: t.expiresAt,
      federations: feds ? [...new Set(feds.map((f) => f.name))] : null,
    };
  }

  /** Every token, oldest first, with the names of the federations each is limited to. */
  async list(): Promise<TokenListing[]> {
    const rows = await this.tokens.list();
    const names = await this.names(rows.flatMap((r) => r.federationIds ?? []));
    return rows.map((r) => this.listing(r, names));
  }

  /** Revokes an active token; NOT_FOUND when there is none with that id. */
  async revoke(id: string): Promise<TokenListing> {
    const r = await this.tokens.revoke(id);
    return this.listing(r, await this.names(r.federationIds ?? []));
  }

  private listing({ federationIds, ...rest }: ApiTokenInfo, names: Map<string, string>): TokenListing {
    return { ...rest, federations: federationIds?.map((id) => names.get(id) ?? id) ?? null };
  }

  private async names(ids: string[]): Promise<Map<string, string>> {
    const feds = await this.federations.byIds([...new Set(ids)]);
    return new Map(feds.map((f) => [f.id, f.name]));
  }
}
