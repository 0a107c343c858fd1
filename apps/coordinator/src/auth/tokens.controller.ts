import { Body, Controller, Get, Inject, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { noteAudit } from '../http/audit-trail';
import { Roles } from '../http/auth';
import type { ApiRequest } from '../http/boundary';
import { CoordinatorContext } from '../http/context';
import { MAX_TOKEN_HOURS } from './token-admin';

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
