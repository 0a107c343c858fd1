import { type CanActivate, type ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { ApiRole } from '../db/entities';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import type { ApiRequest } from './boundary';

export const ROLES_KEY = 'fedsynth:roles';
/** Which roles may call a handler; none means public. admin may call everything. */
export const Roles = (...roles: ApiRole[]) => SetMetadata(ROLES_KEY, roles);

/**
 * Checks the API token, verified at the boundary before anything else (see boundary.ts), against
 * the roles a handler allows.
 */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(@Inject(Reflector) private readonly reflector: Reflector) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const roles = this.reflector.getAllAndOverride<ApiRole[] | undefined>(ROLES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!roles || roles.length === 0) return true;
    const { auth } = context.switchToHttp().getRequest<ApiRequest>();
    if (!auth)
      throw new CoordinatorError(
        ErrorCode.UNAUTHENTICATED,
        'an API token is required (Authorization: Bearer fsk_...)',
      );
    if (auth.role !== 'admin' && !roles.includes(auth.role))
      throw new CoordinatorError(
        ErrorCode.FORBIDDEN,
        `this needs the ${roles.join(' or ')} role; the token has ${auth.role}`,
      );
    return true;
  }
}
