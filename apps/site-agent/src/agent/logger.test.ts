import { describe, expect, it } from 'vitest';
import { createLogger, type LogLevel } from './logger';

/** A logger into a string, as on a pipe (or a terminal with `tty`). */
function capture(format: 'auto' | 'pretty' | 'json', level?: LogLevel, tty = false) {
  let text = '';
  const write = (s: string) => {
    text += s;
    return true;
  };
  const stream = { isTTY: tty, write } as never;
  const log = createLogger(format, stream, 'agent', level);
  const all = () => {
    log.debug('d', { n: 1 });
    log.info('i');
    log.warn('w');
    log.error('e');
  };
  return { log, all, text: () => text, lines: () => text.split('\n').filter(Boolean) };
}

describe('agent logger', () => {
  it('writes info and above by default: debug is hidden', () => {
    const c = capture('json');
    c.all();
    expect(c.lines().map((l) => JSON.parse(l).level)).toEqual(['info', 'warn', 'error']);
  });

  it('writes debug at debug, only warn and error at warn, nothing at silent', () => {
    const debug = capture('json', 'debug');
    debug.all();
    expect(debug.lines().map((l) => JSON.parse(l).level)).toEqual(['debug', 'info', 'warn', 'error']);
    const warn = capture('json', 'warn');
    warn.all();
    expect(warn.lines().map((l) => JSON.parse(l).msg)).toEqual(['w', 'e']);
    const silent = capture('json', 'silent');
    silent.all();
    expect(silent.text()).toBe('');
  });

  it('writes JSON lines as the coordinator does: level, time, name, msg, then the fields', () => {
    const c = capture('json');
    c.log.info('round done', { round: 3, msg: 'not this', level: 'nor this' });
    const line = c.lines()[0];
    expect(Object.keys(JSON.parse(line))).toEqual(['level', 'time', 'name', 'msg', 'round']);
    expect(JSON.parse(line)).toMatchObject({ level: 'info', name: 'agent', msg: 'round done', round: 3 });
    expect(new Date(JSON.parse(line).time).toISOString()).toBe(JSON.parse(line).time);
  });

  it('writes human lines when pretty, and with auto on a terminal; JSON with auto off one', () => {
    const pretty = capture('pretty', 'debug');
    pretty.all();
    expect(pretty.lines()).toEqual([
      expect.stringMatching(/^\d\d:\d\d:\d\d DEBUG d {2}n=1$/),
      expect.stringMatching(/^\d\d:\d\d:\d\d i$/),
      expect.stringMatching(/^\d\d:\d\d:\d\d WARN w$/),
      expect.stringMatching(/^\d\d:\d\d:\d\d ERROR e$/),
    ]);
    expect(pretty.log.json).toBe(false);
    const terminal = capture('auto', 'info', true);
    terminal.log.info('hello');
    expect(() => JSON.parse(terminal.lines()[0])).toThrow();
    const pipe = capture('auto');
    pipe.log.info('hello');
    expect(JSON.parse(pipe.lines()[0]).msg).toBe('hello');
  });
});
