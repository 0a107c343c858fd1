import 'reflect-metadata';
import { dirname, join } from 'node:path';
import {
  type BeforeApplicationShutdown,
  type DynamicModule,
  type INestApplication,
  Inject,
  Injectable,
  Module,
} from '@nestjs/common';
import { APP_FILTER, APP_GUARD, NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AuditModule } from '../audit/audit.module';
import { AuthModule } from '../auth/auth.module';
import { CheckpointsModule } from '../checkpoints/checkpoints.module';
import { FederationsModule } from '../federations/federations.module';
import { HealthModule } from '../health/health.module';
import { type Logger, log } from '../logging/logger';
import { NestLogger } from '../logging/nest-logger';
import { requestLog } from '../logging/request-log';
import { SitesModule } from '../sites/sites.module';
import { auditTrail } from './audit-trail';
import { RolesGuard } from './auth';
import { apiBoundary } from './boundary';
import { CoordinatorContext } from './context';
import { HttpErrorFilter } from './error-filter';
import { securityHeaders } from './security-headers';

/** Lets the audit events of the last requests reach the database before it closes. */
@Injectable()
class AuditFlush implements BeforeApplicationShutdown {
  constructor(@Inject(CoordinatorContext) private readonly ctx: CoordinatorContext) {}

  beforeApplicationShutdown(): Promise<void> {
    return this.ctx.audit.settled();
  }
}

/**
 * The REST API: a module per domain (health, auth and tokens, federations, checkpoints, sites, the
 * audit trail), sharing the one CoordinatorContext, with the role guard and the error filter for
 * every route.
 */
@Module({})
class CoordinatorModule {
  static forRoot(ctx: CoordinatorContext): DynamicModule {
    return {
      module: CoordinatorModule,
      global: true,
      imports: [HealthModule, AuthModule, FederationsModule, CheckpointsModule, SitesModule, AuditModule],
      providers: [
        { provide: CoordinatorContext, useValue: ctx },
        { provide: APP_GUARD, useClass: RolesGuard },
        { provide: APP_FILTER, useClass: HttpErrorFilter },
        AuditFlush,
      ],
      exports: [CoordinatorContext],
    };
  }
}

/** The dashboard's files (apps/coordinator/web), from src/http or dist/http alike. */
export const WEB_DIR = join(__dirname, '..', '..', 'web');

/**
 * Builds the HTTP application (REST API, OpenAPI at /api/docs, /health, /metrics, the dashboard).
 * Nest's own body parsers are off: the boundary (see boundary.ts) authenticates a request and
 * decides from its headers whether and how much of its body to read, before any route runs.
 * Nest's messages and a record per request (see request-log.ts) go to `logger` (default: the
 * process's logger).
 */
export async function createHttpApp(
  ctx: CoordinatorContext,
  opts: { https?: { key: Buffer; cert: Buffer }; logger?: Logger } = {},
): Promise<INestApplication> {
  const logger = opts.logger ?? log();
  const app = await NestFactory.create<NestExpressApplication>(CoordinatorModule.forRoot(ctx), {
    logger: new NestLogger(logger),
    httpsOptions: opts.https,
    bodyParser: false,
  });
  const { boundary } = ctx;
  // First, so that it times the whole request and also records the ones refused further on.
  app.use(requestLog(logger));
  app.disable('x-powered-by');
  app.set('trust proxy', boundary.trustProxy);
  app.use(securityHeaders({ tls: !!opts.https }));
  // CORS stays closed (no Access-Control-Allow-Origin) unless origins are named.
  if (boundary.corsOrigins.length) app.enableCors({ origin: boundary.corsOrigins, credentials: false });
  // Before the boundary, so that the requests it refuses (401, 413, ...) are recorded too.
  app.use(auditTrail({ record: (e) => ctx.audit.record(e) }));
  app.use(
    apiBoundary({
      verifyToken: (t) => ctx.tokens.verify(t),
      limiter: ctx.failures,
      limits: boundary.body,
    }),
  );
  // The dashboard: static files at /, the chart library from its package.
  app.useStaticAssets(WEB_DIR, { index: 'index.html' });
  app.useStaticAssets(dirname(require.resolve('uplot/dist/uPlot.iife.min.js')), { prefix: '/assets/uplot/' });
  const doc = new DocumentBuilder()
    .setTitle('fedsynth coordinator')
    .setDescription(
      'Federations, sites, enrollment, rounds and metrics. Admin and researcher API tokens: Authorization: Bearer fsk_...',
    )
    .setVersion(ctx.version)
    .addBearerAuth()
    .build();
  SwaggerModule.setup('api/docs', app, SwaggerModule.createDocument(app, doc), {
    jsonDocumentUrl: 'api/docs/openapi.json',
  });
  return app;
}
