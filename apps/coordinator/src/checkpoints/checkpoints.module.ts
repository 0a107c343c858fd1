import { Module } from '@nestjs/common';
import { CheckpointsController } from './checkpoints.controller';

/** The checkpoints routes of the REST API. */
@Module({ controllers: [CheckpointsController] })
export class CheckpointsModule {}
