import { Module } from '@nestjs/common';
import { FederationConfigController, FederationsController } from './federations.controller';

/** The federations routes of the REST API. */
@Module({ controllers: [FederationConfigController, FederationsController] })
export class FederationsModule {}
