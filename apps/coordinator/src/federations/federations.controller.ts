import { DEFAULT_FEDERATION_CONFIG, federationConfigJsonSchema } from '@fedsynth/protocol';
import {
  Body,
  Controller,
  Get,
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
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { architectureOf, validateFederationModel } from '../checkpoints/model-validation';
import type { FederationEntity, MetricEntity } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { noteAudit } from '../http/audit-trail';
import { Roles } from '../http/auth';
import type { ApiRequest } from '../http/boundary';
import { CoordinatorContext } from '../http/context';
import type { FederationAction } from './federation-service';

/** An OpenAPI schema object, as @nestjs/swagger takes it. */
type SchemaObject = Extract<
  Extract<Parameters<typeof ApiBody>[0], { schema: unknown }>['schema'],
  { properties?: unknown }
>;

/** The configuration's JSON Schema (libs/protocol FederationConfig), for the OpenAPI description. */
const { $schema: _draft, ...CONFIG_SCHEMA } = federationConfigJsonSchema() as SchemaObject & {
  $schema?: string;
};
const CREATE_BODY: SchemaObject = {
  ...CONFIG_SCHEMA,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][\\w.-]{0,99}$' },
    ...CONFIG_SCHEMA.properties,
  },
};

/** A new federation: its name and any sections of its configuration (libs/protocol FederationConfig). */
const createFederation = z.looseObject({ name: z.string() });

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
  @ApiBody({ schema: CREATE_BODY })
  @ApiOperation({
    summary:
      'Create a federation: its name and any sections of its configuration (unset fields take defaults; unknown keys are refused); admin tokens for every federation only',
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
  @ApiBody({ schema: CONFIG_SCHEMA })
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
        validateFederationModel(
          bytes,
          architectureOf(this.ctx.federations.configOf(fed)),
          'the uploaded model',
        ),
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
    description:
      "Rows of round, site (null: global), name, value, count. With the federation's " +
      'privacy.secureMetrics the sites send their figures only inside the masked vector: every row ' +
      "is global, scores of a model are under the round that produced it (-1: the federation's " +
      'initial model), filled in by the next round, and each figure has a <name>_bound row (its ' +
      'largest distance to the exact weighted mean of the sites’ figures).',
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
      'PNG: source | synthetic CT | CT of a phantom the coordinator generates, by the published (or ?checkpoint=sha) model: the server moving average where strategy.serverEma is set, else the current checkpoint',
  })
  async sample(
    @Param('id') id: string,
    @Query('checkpoint') checkpoint: string | undefined,
    @Req() req: ApiRequest,
    @Res({ passthrough: true }) res: { setHeader(k: string, v: string): void },
  ) {
    const fed = await this.federation(req, id);
    // The published model: the server's moving average where the federation keeps one.
    const sha = checkpoint ?? fed.currentModel ?? fed.currentCheckpoint;
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

@ApiTags('federations')
@ApiBearerAuth()
@Controller('api/federation-config')
export class FederationConfigController {
  @Get()
  @Roles('researcher')
  @ApiOperation({
    summary: "A federation configuration's JSON Schema and defaults (what forms are built from)",
  })
  describe() {
    return { schema: CONFIG_SCHEMA, defaults: DEFAULT_FEDERATION_CONFIG };
  }
}
