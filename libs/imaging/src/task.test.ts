import { describe, expect, it } from 'vitest';
import { conditionChannels, formatTask, kindOf, parseTask, taskModalities, validateTask } from './task';

describe('tasks', () => {
  it('parses the demo tasks and 2.5D context, and prints them back', () => {
    expect(parseTask('t1+t2-to-ct')).toEqual({ sources: ['t1', 't2'], target: 'ct', context: 0 });
    expect(parseTask('pet-to-mr')).toEqual({ sources: ['pet'], target: 'mr', context: 0 });
    expect(parseTask('T1-to-FLAIR:2.5d=2')).toEqual({ sources: ['t1'], target: 'flair', context: 2 });
    for (const t of ['mr-to-ct', 't1+t2-to-ct', 'pet-to-mr', 't1-to-flair:2.5d=1'])
      expect(formatTask(parseTask(t))).toBe(t);
  });

  it('counts condition channels: sources times (2k + 1)', () => {
    expect(conditionChannels(parseTask('mr-to-ct'))).toBe(1);
    expect(conditionChannels(parseTask('t1+t2-to-ct'))).toBe(2);
    expect(conditionChannels(parseTask('t1+t2+flair-to-ct:2.5d=1'))).toBe(9);
    expect(taskModalities(parseTask('t1+t2-to-ct'))).toEqual(['t1', 't2', 'ct']);
  });

  it('scales CT by HU, PET by SUV and every MR sequence alike', () => {
    expect(['ct', 'pet', 'mr', 't1', 't2', 'flair'].map((m) => kindOf(m as never))).toEqual([
      'ct',
      'pet',
      'mr',
      'mr',
      'mr',
      'mr',
    ]);
  });

  it('names what is wrong with a task', () => {
    expect(() => parseTask('mri->ct')).toThrow(/not of the form/);
    expect(() => parseTask('t3-to-ct')).toThrow(/unknown source modality "t3"/);
    expect(() => parseTask('t1-to-xray')).toThrow(/unknown target modality "xray"/);
    expect(() => parseTask('t1+t1-to-ct')).toThrow(/listed twice/);
    expect(() => parseTask('ct+t1-to-ct')).toThrow(/target ct is also a source/);
    expect(() => parseTask('t1-to-ct:2.5d=9')).toThrow(/context must be an integer in \[0, 3\]/);
    expect(() => validateTask({ sources: 't1', target: 'ct' })).toThrow(/one or more source/);
    expect(() => validateTask({ sources: [7], target: 'ct' })).toThrow(/unknown source modality "7"/);
  });
});
