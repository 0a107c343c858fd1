import { type CanActivate, type ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { ApiRole } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { CoordinatorContext } from './context';

export const ROLES_KEY = 'fedsynth:roles';
/** Which roles may call a handler; none means public. admin may call everything. */
export const Roles = (...roles: ApiRole[]) => SetMetadata(ROLES_KEY, roles);

/** Checks the bearer API token against the roles a handler allows. */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(CoordinatorContext) private readonly ctx: CoordinatorContext,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const roles = this.reflector.getAllAndOverride<ApiRole[] | undefined>(ROLES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!roles || roles.length === 0) return true;
    const req = context
      .switchToHttp()
      .getRequest<{ headers: Record<string, string | undefined>; role?: ApiRole }>();
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const { role } = await this.ctx.tokens.verify(token);
    if (role !== 'admin' && !roles.includes(role))
      throw new CoordinatorError(
        ErrorCode.FORBIDDEN,
        `this needs the ${roles.join(' or ')} role; the token has ${role}`,
      );
    req.role = role;
    return true;
  }
}
