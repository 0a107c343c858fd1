import { Controller, Get, Inject, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Roles } from '../http/auth';
import type { ApiRequest } from '../http/boundary';
import { CoordinatorContext } from '../http/context';
import { ROUND_STAGES } from '../rounds/round-state';

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
