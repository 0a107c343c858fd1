import { Controller, Get, Inject, Param, Req, Res, StreamableFile } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { noteAudit } from '../http/audit-trail';
import { Roles } from '../http/auth';
import type { ApiRequest } from '../http/boundary';
import { CoordinatorContext } from '../http/context';

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
