import { Module } from '@nestjs/common';
import { AuditController } from './audit.controller';

/** The audit routes of the REST API. */
@Module({ controllers: [AuditController] })
export class AuditModule {}
