import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';

/** Lifecycle of a federation's training. */
export type FederationStatus = 'created' | 'running' | 'paused' | 'stopped';

@Entity({ name: 'federations' })
export class FederationEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ type: 'text', unique: true }) name!: string;
  /**
   * The whole configuration (libs/protocol FederationConfig) as stored: parse it before use (a
   * stored document that no longer parses pauses its federation).
   */
  @Column({ type: 'jsonb' }) config!: unknown;
  /** Incremented by every change of the configuration; rounds record the version they ran with. */
  @Column({ name: 'config_version', type: 'integer', default: 1 }) configVersion!: number;
  @Column({ type: 'text', default: 'created' }) status!: FederationStatus;
  /** Why the federation is paused or stopped when the coordinator did it (a broken configuration, a budget spent). */
  @Column({ name: 'status_reason', type: 'text', nullable: true }) statusReason!: string | null;
  @Column({ name: 'current_checkpoint', type: 'text', nullable: true }) currentCheckpoint!: string | null;
  /**
   * The model the federation publishes (scored, shown, downloaded) when it differs from the
   * checkpoint sites train from: the server's moving average (strategy.serverEma); else null.
   */
  @Column({ name: 'current_model', type: 'text', nullable: true }) currentModel!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

export type SiteStatus = 'pending' | 'approved' | 'revoked';

@Entity({ name: 'sites' })
@Index('sites_federation_name', ['federationId', 'name'], { unique: true })
export class SiteEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'federation_id', type: 'uuid' }) federationId!: string;
  @Column({ type: 'text' }) name!: string;
  /** Ed25519 identity public key (32 bytes). */
  @Column({ name: 'public_key', type: 'bytea', unique: true }) publicKey!: Buffer;
  @Column({ type: 'text', default: 'pending' }) status!: SiteStatus;
  @Column({ name: 'last_seen_at', type: 'timestamptz', nullable: true }) lastSeenAt!: Date | null;
  @Column({ type: 'text', nullable: true }) backend!: string | null;
  @Column({ type: 'text', nullable: true }) device!: string | null;
  @Column({ name: 'sample_count', type: 'integer', default: 0 }) sampleCount!: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}

@Entity({ name: 'enrollment_tokens' })
export class EnrollmentTokenEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'federation_id', type: 'uuid' }) federationId!: string;
  /** sha256 of the token: the token itself is shown once and never stored. */
  @Column({ name: 'token_hash', type: 'bytea', unique: true }) tokenHash!: Buffer;
  @Column({ name: 'site_name', type: 'text' }) siteName!: string;
  @Column({ name: 'expires_at', type: 'timestamptz' }) expiresAt!: Date;
  @Column({ name: 'used_at', type: 'timestamptz', nullable: true }) usedAt!: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}

@Entity({ name: 'federation_config_versions' })
export class FederationConfigVersionEntity {
  @PrimaryColumn({ name: 'federation_id', type: 'uuid' }) federationId!: string;
  @PrimaryColumn({ type: 'integer' }) version!: number;
  @Column({ type: 'jsonb' }) config!: unknown;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  /** The API token that made the change (null for the first version or a migration). */
  @Column({ name: 'created_by', type: 'uuid', nullable: true }) createdBy!: string | null;
}

@Entity({ name: 'rounds' })
@Index('rounds_federation_number', ['federationId', 'number'], { unique: true })
export class RoundEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'federation_id', type: 'uuid' }) federationId!: string;
  @Column({ type: 'integer' }) number!: number;
  /** selecting, advertise-keys, share-keys, masked-input, consistency-check, unmask, evaluating, completed, failed, aborted. */
  @Column({ type: 'text' }) stage!: string;
  /** ISO time each stage began, by stage. */
  @Column({ name: 'stage_times', type: 'jsonb', default: () => "'{}'" }) stageTimes!: Record<string, string>;
  @Column({ type: 'jsonb', default: () => "'[]'" }) participants!: { index: number; siteId: string }[];
  @Column({ type: 'jsonb', default: () => "'[]'" }) dropouts!: { siteId: string; stage: string }[];
  @Column({ name: 'bytes_in', type: 'bigint', default: 0 }) bytesIn!: string;
  @Column({ name: 'bytes_out', type: 'bigint', default: 0 }) bytesOut!: string;
  @Column({ name: 'checkpoint_in', type: 'text' }) checkpointIn!: string;
  /** The version of the federation's configuration the round ran with. */
  @Column({ name: 'config_version', type: 'integer', nullable: true }) configVersion!: number | null;
  /** The round's secure-aggregation graph and threshold. */
  @Column({ type: 'jsonb', nullable: true }) secagg!: {
    graph: 'complete' | 'harary';
    neighbours: number;
    threshold: number;
  } | null;
  @Column({ name: 'checkpoint_out', type: 'text', nullable: true }) checkpointOut!: string | null;
  /** The model this round published when it is not checkpointOut: the server's moving average. */
  @Column({ name: 'model_out', type: 'text', nullable: true }) modelOut!: string | null;
  @Column({ type: 'text', nullable: true }) error!: string | null;
  @Column({ name: 'started_at', type: 'timestamptz' }) startedAt!: Date;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
}

@Entity({ name: 'checkpoints' })
export class CheckpointEntity {
  /** Content address: hex sha256 of the safetensors bytes (the blob lives on disk under this name). */
  @PrimaryColumn({ type: 'text' }) sha256!: string;
  @Column({ type: 'bigint' }) size!: string;
  @Column({ name: 'federation_id', type: 'uuid', nullable: true }) federationId!: string | null;
  @Column({ name: 'round_number', type: 'integer', nullable: true }) roundNumber!: number | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}

@Entity({ name: 'metrics' })
@Index('metrics_federation_round', ['federationId', 'roundNumber'])
export class MetricEntity {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' }) id!: string;
  @Column({ name: 'federation_id', type: 'uuid' }) federationId!: string;
  @Column({ name: 'round_number', type: 'integer' }) roundNumber!: number;
  /** null for the federation-wide (weighted) figure. */
  @Column({ name: 'site_id', type: 'uuid', nullable: true }) siteId!: string | null;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'double precision' }) value!: number;
  @Column({ type: 'integer', default: 0 }) count!: number;
}

export type ApiRole = 'admin' | 'researcher';

@Entity({ name: 'api_tokens' })
export class ApiTokenEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column({ name: 'token_hash', type: 'bytea', unique: true }) tokenHash!: Buffer;
  @Column({ type: 'text' }) role!: ApiRole;
  @Column({ type: 'text', default: '' }) label!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true }) revokedAt!: Date | null;
  /** null: never expires. */
  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true }) expiresAt!: Date | null;
  /** The federations the token may reach; null: every federation. */
  @Column({ name: 'federation_ids', type: 'uuid', array: true, nullable: true })
  federationIds!: string[] | null;
  /** The token that created this one; null when made by the CLI or by `serve`. */
  @Column({ name: 'created_by', type: 'uuid', nullable: true }) createdBy!: string | null;
  /** Updated at most once a minute, not on every request. */
  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true }) lastUsedAt!: Date | null;
}

/** One recorded admin or researcher action, refusal or failed authentication (see http/audit-trail.ts). */
@Entity({ name: 'audit_events' })
@Index('audit_events_at', ['at'])
export class AuditEventEntity {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' }) id!: string;
  @CreateDateColumn({ type: 'timestamptz' }) at!: Date;
  @Column({ name: 'actor_token_id', type: 'uuid', nullable: true }) actorTokenId!: string | null;
  @Column({ name: 'actor_role', type: 'text', nullable: true }) actorRole!: string | null;
  @Column({ name: 'actor_label', type: 'text', nullable: true }) actorLabel!: string | null;
  /** The client address as Express computes it (honouring the configured trust proxy). */
  @Column({ type: 'text' }) address!: string;
  @Column({ type: 'text', nullable: true }) method!: string | null;
  @Column({ type: 'text', nullable: true }) path!: string | null;
  @Column({ type: 'integer', nullable: true }) status!: number | null;
  /** A short name: federation.start, token.create, model.download, auth.failed, ... */
  @Column({ type: 'text', nullable: true }) action!: string | null;
  /** The federation, site, token or checkpoint acted on. */
  @Column({ type: 'text', nullable: true }) target!: string | null;
  @Column({ type: 'jsonb', nullable: true }) detail!: Record<string, unknown> | null;
}

export const ENTITIES = [
  FederationEntity,
  FederationConfigVersionEntity,
  SiteEntity,
  EnrollmentTokenEntity,
  RoundEntity,
  CheckpointEntity,
  MetricEntity,
  ApiTokenEntity,
  AuditEventEntity,
];
