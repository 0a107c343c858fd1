import { Controller, Get, Inject, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Roles } from '../http/auth';
import type { ApiRequest } from '../http/boundary';
import { CoordinatorContext } from '../http/context';
import { MAX_AUDIT_PAGE } from './audit-log';

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
