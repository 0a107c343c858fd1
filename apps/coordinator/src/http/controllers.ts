import {
  Body,
  Controller,
  Get,
  Header,
  Inject,
  Param,
  Patch,
  Post,
  Put,
  Query,
  Req,
  Res,
  StreamableFile,
} from '@nestjs/common';
import { ApiBearerAuth, ApiConsumes, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { MAX_AUDIT_PAGE } from '../audit/audit-log';
import { MAX_TOKEN_HOURS } from '../auth/token-admin';
import { validateFederationModel } from '../checkpoints/model-validation';
import type { FederationEntity, MetricEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import type { FederationAction } from '../federations/federation-service';
import { ROUND_STAGES } from '../rounds/round-state';
import { noteAudit } from './audit-trail';
import { Roles } from './auth';
import type { ApiRequest } from './boundary';
import { CoordinatorContext } from './context';
import { promText } from './prometheus';

const b64 = (bytes: number) =>
  z
    .string()
    .max(Math.ceil(bytes / 3) * 4 + 4)
    .transform((s, c): Uint8Array => {
      const buf = Buffer.from(s, 'base64');
      if (buf.length !== bytes) c.addIssue({ code: 'custom', message: `expected ${bytes} bytes as base64` });
      return new Uint8Array(buf);
    });

/** A new federation: its name and any sections of its configuration (libs/protocol FederationConfig). */
const createFederation = z.looseObject({ name: z.string() });

@ApiTags('health')
@Controller()
export class HealthController {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  @Get('health')
  @ApiOperation({ summary: 'Liveness and database reachability' })
  async health() {
    await this.ctx.db.dataSource.query('SELECT 1');
    return {
      status: 'ok',
      version: this.ctx.version,
      database: this.ctx.db.kind,
      uptimeS: Math.round((Date.now() - this.ctx.startedAt.getTime()) / 1000),
    };
  }

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4')
  @ApiOperation({ summary: 'Prometheus metrics' })
  async metrics() {
    return promText(this.ctx);
  }
}

@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/me')
export class MeController {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  @Get()
  @Roles('researcher')
  @ApiOperation({
    summary:
      'The id, role, label and federation scope (null: every federation) of the calling token, and the round stages in order (the dashboard signs in with it)',
  })
  async me(@Req() req: ApiRequest) {
    const scope = req.auth?.federations ?? null;
    return {
      id: req.auth?.id,
      role: req.auth?.role,
      label: req.auth?.label,
      federations:
        scope && (await this.ctx.federations.byIds(scope)).map((f) => ({ id: f.id, name: f.name })),
      roundStages: ROUND_STAGES.filter((s) => s !== 'completed'),
    };
  }
}

const createToken = z
  .object({
    role: z.enum(['admin', 'researcher']),
    label: z.string().max(100).default(''),
    expiresInHours: z.number().positive().max(MAX_TOKEN_HOURS).optional(),
    federations: z.array(z.string().min(1).max(100)).min(1).max(100).optional(),
  })
  .strict();

/** Only admin tokens for every federation manage tokens: a limited admin could otherwise widen its own reach. */
const MANAGING_TOKENS = 'managing API tokens';

@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/tokens')
export class TokensController {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  @Get()
  @Roles('admin')
  @ApiOperation({
    summary:
      'List API tokens (never their secrets): role, label, created, expires, revoked, last used, federations by name (null: all). Admin tokens for every federation only',
  })
  async list(@Req() req: ApiRequest) {
    await this.ctx.scope.requireUnscoped(req.auth, MANAGING_TOKENS);
    return this.ctx.tokenAdmin.list();
  }

  @Post()
  @Roles('admin')
  @ApiOperation({
    summary:
      'Create an API token, shown once: { role, label?, expiresInHours? (at most 5 years), federations? (ids or names; absent: every federation) }. Admin tokens for every federation only',
  })
  async create(@Body() body: unknown, @Req() req: ApiRequest) {
    const input = createToken.parse(body);
    await this.ctx.scope.requireUnscoped(req.auth, MANAGING_TOKENS);
    const t = await this.ctx.tokenAdmin.create(input, req.auth?.id);
    // Everything about the new token but its secret.
    const { role, label, expiresAt, federations } = t;
    noteAudit(req, { target: t.id, detail: { role, label, expiresAt, federations } });
    return t;
  }

  @Post(':id/revoke')
  @Roles('admin')
  @ApiOperation({ summary: 'Revoke an API token: it is refused from the next request on' })
  async revoke(@Param('id') id: string, @Req() req: ApiRequest) {
    await this.ctx.scope.requireUnscoped(req.auth, MANAGING_TOKENS);
    return this.ctx.tokenAdmin.revoke(id);
  }
}

@ApiTags('federations')
@ApiBearerAuth()
@Controller('api/federations')
export class FederationsController {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  /** The federation named in the path, if the token may reach it; its id goes to the audit trail. */
  private async federation(req: ApiRequest, ref: string): Promise<FederationEntity> {
    const fed = await this.ctx.scope.federation(req.auth, ref);
    noteAudit(req, { target: fed.id });
    return fed;
  }

  @Post()
  @Roles('admin')
  @ApiOperation({
    summary: 'Create a federation (unset options take defaults); admin tokens for every federation only',
  })
  async create(@Body() body: unknown, @Req() req: ApiRequest) {
    const input = createFederation.parse(body);
    await this.ctx.scope.requireUnscoped(req.auth, 'creating a federation');
    const fed = await this.ctx.federations.create(input, req.auth?.id ?? null);
    noteAudit(req, { target: fed.id, detail: { name: fed.name } });
    return fed;
  }

  @Get()
  @Roles('researcher')
  @ApiOperation({ summary: "List federations (those of the token's scope)" })
  async list(@Req() req: ApiRequest) {
    return this.ctx.scope.visible(req.auth, await this.ctx.federations.list());
  }

  @Get(':id')
  @Roles('researcher')
  get(@Param('id') id: string, @Req() req: ApiRequest) {
    return this.federation(req, id);
  }

  @Patch(':id')
  @Roles('admin')
  @ApiOperation({
    summary:
      'Change the configuration between rounds: any sections and fields (they merge into the current ones); a new version',
  })
  async update(@Param('id') id: string, @Body() body: unknown, @Req() req: ApiRequest) {
    const fed = await this.federation(req, id);
    const updated = await this.ctx.federations.updateConfig(fed.id, body, req.auth?.id ?? null);
    noteAudit(req, { target: fed.id, detail: { version: updated.configVersion } });
    return updated;
  }

  @Get(':id/config-versions')
  @Roles('researcher')
  @ApiOperation({ summary: "Every version of the federation's configuration, oldest first" })
  async configVersions(@Param('id') id: string, @Req() req: ApiRequest) {
    return this.ctx.federations.versions((await this.federation(req, id)).id);
  }

  @Post(':id/enrollment-tokens')
  @Roles('admin')
  @ApiOperation({ summary: 'A one-time enrollment token for a named site (shown once)' })
  async enrollmentToken(@Param('id') id: string, @Body() body: unknown, @Req() req: ApiRequest) {
    const { siteName, ttlHours } = z
      .object({ siteName: z.string(), ttlHours: z.number().positive().max(8760).default(72) })
      .strict()
      .parse(body);
    const fed = await this.federation(req, id);
    noteAudit(req, { detail: { siteName } });
    return this.ctx.enrollment.createToken(fed.id, siteName, ttlHours);
  }

  @Put(':id/checkpoint')
  @Roles('admin')
  @ApiConsumes('application/octet-stream')
  @ApiOperation({
    summary:
      "Upload the initial global model: the safetensors file as the body (application/octet-stream), streamed; it must be a model of the federation's architecture. Only before the first completed round",
  })
  async uploadCheckpoint(@Param('id') id: string, @Req() req: ApiRequest) {
    const fed = await this.federation(req, id);
    const refuse = () =>
      new CoordinatorError(
        ErrorCode.ILLEGAL_TRANSITION,
        `federation "${fed.name}" has completed rounds; its model comes from them`,
      );
    if (await this.ctx.federations.hasCompletedRounds(fed.id)) throw refuse();
    const { sha256, size } = await this.ctx.checkpoints.putStream(req, {
      maxBytes: this.ctx.boundary.body.model,
      validate: (bytes) =>
        validateFederationModel(bytes, this.ctx.federations.configOf(fed).model, 'the uploaded model'),
      meta: { federationId: fed.id },
    });
    if (!(await this.ctx.federations.setInitialCheckpoint(fed.id, sha256))) throw refuse();
    return { sha256, size };
  }

  @Get(':id/sites')
  @Roles('admin')
  async sites(@Param('id') id: string, @Req() req: ApiRequest) {
    const fed = await this.federation(req, id);
    const online = await this.ctx.onlineSiteIds();
    return (await this.ctx.enrollment.list(fed.id)).map((s) => ({
      ...s,
      publicKey: Buffer.from(s.publicKey).toString('base64'),
      online: online.has(s.id),
    }));
  }

  @Get(':id/rounds')
  @Roles('researcher')
  async rounds(@Param('id') id: string, @Req() req: ApiRequest) {
    return this.ctx.rounds((await this.federation(req, id)).id);
  }

  @Get(':id/metrics')
  @Roles('researcher')
  @ApiOperation({
    summary: 'Metrics per round: global for researchers, per site for admins (?perSite=1); ?format=csv',
  })
  async metrics(
    @Param('id') id: string,
    @Query('format') format: string | undefined,
    @Query('perSite') perSite: string | undefined,
    @Req() req: ApiRequest,
    @Res({ passthrough: true }) res: { setHeader(k: string, v: string): void },
  ) {
    const fed = await this.federation(req, id);
    const wantPerSite = perSite === '1' || perSite === 'true';
    // Per-site figures tell about one hospital's data: admins only.
    if (wantPerSite && req.auth?.role !== 'admin')
      throw new CoordinatorError(ErrorCode.FORBIDDEN, 'per-site metrics need the admin role');
    const rows: MetricEntity[] = await this.ctx.metrics(fed.id, wantPerSite);
    if (format === 'csv') {
      res.setHeader('Content-Type', 'text/csv');
      return [
        'round,site,name,value,count',
        ...rows.map((m) => `${m.roundNumber},${m.siteId ?? 'global'},${m.name},${m.value},${m.count}`),
      ].join('\n');
    }
    return rows.map((m) => ({
      round: m.roundNumber,
      site: m.siteId,
      name: m.name,
      value: m.value,
      count: m.count,
    }));
  }

  @Get(':id/sample')
  @Roles('researcher')
  @ApiOperation({
    summary:
      'PNG: source | synthetic CT | CT of a phantom the coordinator generates, by the current (or ?checkpoint=sha) model',
  })
  async sample(
    @Param('id') id: string,
    @Query('checkpoint') checkpoint: string | undefined,
    @Req() req: ApiRequest,
    @Res({ passthrough: true }) res: { setHeader(k: string, v: string): void },
  ) {
    const fed = await this.federation(req, id);
    const sha = checkpoint ?? fed.currentCheckpoint;
    if (!sha) throw new CoordinatorError(ErrorCode.NOT_FOUND, `federation "${fed.name}" has no model yet`);
    if (!/^[0-9a-f]{64}$/.test(sha))
      throw new CoordinatorError(ErrorCode.INVALID_INPUT, 'checkpoint must be a lower-case hex sha256');
    // A rendering shows the model: a limited token sees only models of its federations.
    if (checkpoint !== undefined) await this.ctx.scope.checkpoint(req.auth, sha);
    const png = await this.ctx.samples.render(sha, () => this.ctx.checkpoints.get(sha));
    res.setHeader('Content-Type', 'image/png');
    res.setHeader('Cache-Control', 'private, max-age=86400');
    return new StreamableFile(png);
  }

  // Registered last: the generic action route must not capture the named routes above.
  @Post(':id/:action')
  @Roles('admin')
  @ApiOperation({ summary: 'start, pause, resume or stop' })
  async act(@Param('id') id: string, @Param('action') action: string, @Req() req: ApiRequest) {
    if (!['start', 'pause', 'resume', 'stop'].includes(action))
      throw new CoordinatorError(
        ErrorCode.NOT_FOUND,
        `no action "${action}": use start, pause, resume or stop`,
      );
    const fed = await this.federation(req, id);
    return this.ctx.federations.transition(fed.id, action as FederationAction);
  }
}

@ApiTags('checkpoints')
@ApiBearerAuth()
@Controller('api/checkpoints')
export class CheckpointsController {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  @Get(':sha256')
  @Roles('researcher')
  @ApiOperation({ summary: 'Download a global model (safetensors) by its sha256' })
  async download(
    @Param('sha256') sha: string,
    @Req() req: ApiRequest,
    @Res({ passthrough: true }) res: { setHeader(k: string, v: string): void },
  ) {
    const federationId = await this.ctx.scope.checkpoint(req.auth, sha);
    if (federationId) noteAudit(req, { detail: { federationId } });
    const bytes = await this.ctx.checkpoints.get(sha);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Disposition', `attachment; filename="${sha}.safetensors"`);
    return new StreamableFile(Buffer.from(bytes));
  }
}

@ApiTags('sites')
@Controller('api')
export class SitesController {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  @Post('enroll')
  @ApiOperation({ summary: 'A site enrolls its Ed25519 key with a one-time token (no API token needed)' })
  async enroll(@Body() body: unknown, @Req() req: ApiRequest) {
    const { token, publicKey, signature } = z
      .object({ token: z.string().min(1).max(200), publicKey: b64(32), signature: b64(64) })
      .strict()
      .parse(body);
    const site = await this.ctx.enrollment.enroll({ token, publicKey, signature });
    noteAudit(req, { target: site.id, detail: { federationId: site.federationId, siteName: site.name } });
    // The site pins this key: only round starts signed with it are followed.
    return {
      siteId: site.id,
      name: site.name,
      federationId: site.federationId,
      status: site.status,
      coordinatorKey: Buffer.from(this.ctx.identity.publicKey).toString('base64'),
    };
  }

  @Post('sites/:id/approve')
  @Roles('admin')
  @ApiBearerAuth()
  approve(@Param('id') id: string, @Req() req: ApiRequest) {
    return this.setStatus(req, id, 'approved');
  }

  @Post('sites/:id/revoke')
  @Roles('admin')
  @ApiBearerAuth()
  revoke(@Param('id') id: string, @Req() req: ApiRequest) {
    return this.setStatus(req, id, 'revoked');
  }

  private async setStatus(req: ApiRequest, id: string, status: 'approved' | 'revoked') {
    const federationId = await this.ctx.scope.site(req.auth, id);
    if (federationId) noteAudit(req, { detail: { federationId } });
    const s = await this.ctx.enrollment.setStatus(id, status);
    return { id: s.id, name: s.name, status: s.status };
  }
}

const auditQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(MAX_AUDIT_PAGE).default(100),
    before: z
      .string()
      .regex(/^[1-9]\d{0,17}$/, 'before must be the id of an event (a positive integer)')
      .optional(),
  })
  .strict();

@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/audit')
export class AuditController {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  @Get()
  @Roles('admin')
  @ApiQuery({
    name: 'limit',
    required: false,
    description: `events to return, newest first (at most ${MAX_AUDIT_PAGE})`,
  })
  @ApiQuery({
    name: 'before',
    required: false,
    description: "only events older than this id (the previous page's last)",
  })
  @ApiOperation({
    summary:
      'The audit trail, newest first: who (token, role, label, address) did what to what, and how it ended. An admin token limited to federations sees the events of those federations and its own',
  })
  async list(@Query() query: unknown, @Req() req: ApiRequest) {
    const { limit, before } = auditQuery.parse(query);
    return this.ctx.audit.list({ limit, before, scope: this.ctx.scope.auditScope(req.auth) });
  }
}
