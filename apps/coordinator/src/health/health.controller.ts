import { PROTOCOL_VERSION } from '@fedsynth/protocol';
import { Controller, Get, Inject, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Registry } from 'prom-client';
import { CoordinatorContext } from '../http/context';
import { createMetricsRegistry } from './metrics-registry';

@ApiTags('health')
@Controller()
export class HealthController {
  private readonly registry: Registry;

  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {
    this.registry = createMetricsRegistry(ctx);
  }

  @Get('health')
  @ApiOperation({ summary: 'Liveness and database reachability' })
  async health() {
    await this.ctx.db.dataSource.query('SELECT 1');
    return {
      status: 'ok',
      version: this.ctx.version,
      // Agents compare it with theirs (fedsynth-agent doctor) before they try to log in.
      protocolVersion: PROTOCOL_VERSION,
      database: this.ctx.db.kind,
      uptimeS: Math.round((Date.now() - this.ctx.startedAt.getTime()) / 1000),
    };
  }

  @Get('metrics')
  @ApiOperation({ summary: 'Prometheus metrics (prom-client): the process and the federations' })
  async metrics(@Res({ passthrough: true }) res: { setHeader(k: string, v: string): void }) {
    res.setHeader('Content-Type', this.registry.contentType);
    return this.registry.metrics();
  }
}
