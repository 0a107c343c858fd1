import 'reflect-metadata';
import { dirname, join } from 'node:path';
import { type DynamicModule, type INestApplication, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { RolesGuard } from './auth';
import { CoordinatorContext } from './context';
import {
  CheckpointsController,
  FederationsController,
  HealthController,
  MeController,
  SitesController,
  TokensController,
} from './controllers';
import { HttpErrorFilter } from './error-filter';

@Module({})
class CoordinatorModule {
  static forRoot(ctx: CoordinatorContext): DynamicModule {
    return {
      module: CoordinatorModule,
      controllers: [
        HealthController,
        MeController,
        TokensController,
        FederationsController,
        CheckpointsController,
        SitesController,
      ],
      providers: [
        { provide: CoordinatorContext, useValue: ctx },
        { provide: APP_GUARD, useClass: RolesGuard },
        { provide: APP_FILTER, useClass: HttpErrorFilter },
      ],
    };
  }
}

/** The dashboard's files (apps/coordinator/web), from src/http or dist/http alike. */
export const WEB_DIR = join(__dirname, '..', '..', 'web');

/** Largest JSON request body: a base64 checkpoint of up to ~750 MB. */
export const MAX_JSON_BODY = '1gb';

/** Builds the HTTP application (REST API, OpenAPI at /api/docs, /health, /metrics). */
export async function createHttpApp(
  ctx: CoordinatorContext,
  opts: { https?: { key: Buffer; cert: Buffer } } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(CoordinatorModule.forRoot(ctx), {
    logger: ['error', 'warn'],
    httpsOptions: opts.https,
  });
  // Checkpoint uploads carry a whole model (base64 in JSON); the default 100 kB limit refuses them.
  app.useBodyParser('json', { limit: MAX_JSON_BODY });
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
