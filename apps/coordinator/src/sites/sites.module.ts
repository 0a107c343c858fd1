import { Module } from '@nestjs/common';
import { SitesController } from './sites.controller';

/** The sites routes of the REST API. */
@Module({ controllers: [SitesController] })
export class SitesModule {}
