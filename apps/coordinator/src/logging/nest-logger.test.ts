import { describe, expect, it } from 'vitest';
import { createLogger } from './logger';
import { NestLogger } from './nest-logger';

function capture() {
  let text = '';
  const stream = {
    write: (s: string) => {
      text += s;
      return true;
    },
  } as never;
  const nest = new NestLogger(createLogger({ level: 'debug', format: 'json' }, stream));
  const records = () =>
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { nest, records };
}

describe("Nest's logger through the coordinator's", () => {
  it('keeps the context as a field; start-up detail is debug, the rest info', () => {
    const { nest, records } = capture();
    nest.log('Mapped {/health, GET} route', 'RouterExplorer');
    nest.log('Nest application successfully started', 'NestApplication');
    nest.warn('careful');
    expect(records()).toEqual([
      expect.objectContaining({ level: 'debug', component: 'nest', context: 'RouterExplorer' }),
      expect.objectContaining({
        level: 'info',
        context: 'NestApplication',
        msg: 'Nest application successfully started',
      }),
      expect.objectContaining({ level: 'warn', msg: 'careful' }),
    ]);
  });

  it('turns an error, or a message with a stack, into `err`', () => {
    const { nest, records } = capture();
    nest.error(new Error('boom'));
    nest.error('failed', 'Error: failed\n    at somewhere (x.js:1:1)', 'ExceptionsHandler');
    const [a, b] = records();
    expect(a).toMatchObject({ level: 'error', msg: 'boom', err: { type: 'Error', message: 'boom' } });
    expect(b).toMatchObject({ level: 'error', msg: 'failed', context: 'ExceptionsHandler' });
    expect((b.err as { stack: string }).stack).toContain('at somewhere');
  });
});
