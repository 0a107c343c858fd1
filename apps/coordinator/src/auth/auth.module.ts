import { Module } from '@nestjs/common';
import { MeController } from './me.controller';
import { TokensController } from './tokens.controller';

/** The auth routes of the REST API. */
@Module({ controllers: [MeController, TokensController] })
export class AuthModule {}
