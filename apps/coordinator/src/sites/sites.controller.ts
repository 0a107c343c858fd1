import { Body, Controller, Inject, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { noteAudit } from '../http/audit-trail';
import { Roles } from '../http/auth';
import type { ApiRequest } from '../http/boundary';
import { CoordinatorContext } from '../http/context';

const b64 = (bytes: number) =>
  z
    .string()
    .max(Math.ceil(bytes / 3) * 4 + 4)
    .transform((s, c): Uint8Array => {
      const buf = Buffer.from(s, 'base64');
      if (buf.length !== bytes) c.addIssue({ code: 'custom', message: `expected ${bytes} bytes as base64` });
      return new Uint8Array(buf);
    });

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
