import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ZodError } from 'zod';
import { CoordinatorError, ErrorCode } from '../errors/coordinator-error';
import { requestLogger } from '../logging/request-log';
import { sendError } from './respond';

/**
 * The one place errors become HTTP responses: { code, message } with the code's status. Anything
 * that is not one of our refusals is logged and answered with a fixed text: no database or stack
 * text ever reaches a client.
 */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  catch(err: unknown, host: ArgumentsHost): void {
    const req = host.switchToHttp().getRequest<Request>();
    const res = host.switchToHttp().getResponse<Response>();
    if (err instanceof CoordinatorError) {
      sendError(req, res, err.code, err.message);
    } else if (err instanceof ZodError) {
      const message = err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
      sendError(req, res, ErrorCode.INVALID_INPUT, message);
    } else if (err instanceof HttpException && err.getStatus() === 404) {
      sendError(req, res, ErrorCode.NOT_FOUND, `no route ${req.method} ${req.path}`);
    } else {
      requestLogger(req).error({ err }, 'internal error while answering a request');
      sendError(req, res, ErrorCode.INTERNAL, 'internal error; see the coordinator log');
    }
  }
}
