import { Module } from '@nestjs/common';
import { HealthController } from './health.controller';

/** The health routes of the REST API. */
@Module({ controllers: [HealthController] })
export class HealthModule {}
