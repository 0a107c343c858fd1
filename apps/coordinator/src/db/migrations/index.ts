import { InitialSchema1764028800000 } from './1764028800000-initial-schema';
import { TokenScopesAuditEvents1764545000000 } from './1764545000000-token-scopes-audit-events';
import { FederationConfig1764633600000 } from './1764633600000-federation-config';
import { PublishedModel1764720000000 } from './1764720000000-published-model';

/** Every migration, oldest first. The schema changes only through these (never `synchronize`). */
export const MIGRATIONS = [
  InitialSchema1764028800000,
  TokenScopesAuditEvents1764545000000,
  FederationConfig1764633600000,
  PublishedModel1764720000000,
];
