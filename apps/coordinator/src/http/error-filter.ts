import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { ZodError } from 'zod';
import { CoordinatorError } from '../errors/coordinator-error';

/** The one place errors become HTTP responses: { code, message } with the code's status. */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<{ status(n: number): { json(b: unknown): void } }>();
    if (err instanceof CoordinatorError) {
      res.status(err.httpStatus).json({ code: err.code, message: err.message });
    } else if (err instanceof ZodError) {
      const message = err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
      res.status(400).json({ code: 'INVALID_INPUT', message });
    } else if (err instanceof HttpException) {
      res.status(err.getStatus()).json({ code: 'HTTP_ERROR', message: err.message });
    } else {
      res.status(500).json({ code: 'INTERNAL', message: 'internal error; see the coordinator log' });
      console.error(err);
    }
  }
}
