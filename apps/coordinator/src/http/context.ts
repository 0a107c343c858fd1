import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../audit/audit-log';
import { ApiTokenService } from '../auth/api-tokens';
import { type CoordinatorIdentity, newCoordinatorIdentity } from '../auth/coordinator-identity';
import { TokenAdmin } from '../auth/token-admin';
import { TokenScope } from '../auth/token-scope';
import { CheckpointStore } from '../checkpoints/checkpoint-store';
import type { Database } from '../db/database';
import {
  ApiTokenEntity,
  AuditEventEntity,
  CheckpointEntity,
  MetricEntity,
  RoundEntity,
} from '../db/entities';
import { FederationService } from '../federations/federation-service';
import { SampleRenderer } from '../samples/sample-renderer';
import { EnrollmentService } from '../sites/enrollment-service';
import { type BoundarySettings, DEFAULT_BOUNDARY } from './boundary-settings';
import { FailureLimiter } from './failure-limiter';

/** Everything the HTTP layer needs, built once per process from the open database. */
export class CoordinatorContext {
  readonly tokens: ApiTokenService;
  /** Token management as admins do it (REST and CLI): federations by name, expiry in hours. */
  readonly tokenAdmin: TokenAdmin;
  /** Which federations a token reaches. */
  readonly scope: TokenScope;
  /** The audit trail of admin and researcher actions. */
  readonly audit: AuditLog;
  readonly federations: FederationService;
  readonly enrollment: EnrollmentService;
  readonly checkpoints: CheckpointStore;
  readonly startedAt = new Date();
  /** Agents connected right now (set by the process that runs the gateway). */
  connectedSites: () => number = () => 0;
  /** Ids of the sites connected right now (set by the process that runs the gateway). */
  onlineSiteIds: () => Set<string> | Promise<Set<string>> = () => new Set();
  /** Renders source | synthetic | target of a coordinator-side phantom for the dashboard. */
  readonly samples = new SampleRenderer();
  /** Failed authentications per client address, shared by the REST API and the agent gateway. */
  readonly failures: FailureLimiter;

  constructor(
    readonly db: Database,
    readonly version: string,
    /** Where checkpoint blobs live (content-addressed). */
    blobDir: string = db.kind === 'embedded'
      ? join(db.location, 'checkpoints')
      : join(tmpdir(), `fedsynth-checkpoints-${process.pid}`),
    /** Signs round starts; sites pin its public key at enrollment. */
    readonly identity: CoordinatorIdentity = newCoordinatorIdentity(),
    /** Sizes, rates and addresses of the HTTP and socket boundary. */
    readonly boundary: BoundarySettings = DEFAULT_BOUNDARY,
  ) {
    this.failures = new FailureLimiter(boundary.failures);
    this.checkpoints = new CheckpointStore(blobDir, db.dataSource.getRepository(CheckpointEntity));
    this.tokens = new ApiTokenService(db.dataSource.getRepository(ApiTokenEntity));
    this.federations = new FederationService(db.dataSource);
    this.tokenAdmin = new TokenAdmin(this.tokens, this.federations);
    this.scope = new TokenScope(this.federations, db.dataSource);
    this.audit = new AuditLog(db.dataSource.getRepository(AuditEventEntity));
    this.enrollment = new EnrollmentService(db.dataSource);
  }

  rounds(federationId: string): Promise<RoundEntity[]> {
    return this.db.dataSource
      .getRepository(RoundEntity)
      .find({ where: { federationId }, order: { number: 'ASC' } });
  }

  metrics(federationId: string, perSite: boolean): Promise<MetricEntity[]> {
    const repo = this.db.dataSource.getRepository(MetricEntity);
    return perSite
      ? repo.find({ where: { federationId }, order: { roundNumber: 'ASC', name: 'ASC' } })
      : repo
          .createQueryBuilder('m')
          .where('m.federation_id = :federationId AND m.site_id IS NULL', { federationId })
          .orderBy('m.round_number', 'ASC')
          .addOrderBy('m.name', 'ASC')
          .getMany();
  }
}
