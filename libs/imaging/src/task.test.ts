import { describe, expect, it } from 'vitest';
import {
  conditionChannels,
  DEFAULT_TASK,
  formatTask,
  kindOf,
  parseTask,
  taskModalities,
  validateTask,
} from './task';

describe('tasks', () => {
  it('parses the demo tasks and 2.5D context, and prints them back', () => {
    expect(parseTask('t1+t2-to-ct')).toEqual({ sources: ['t1', 't2'], target: 'ct', context: 0 });
    expect(parseTask('pet-to-mr')).toEqual({ sources: ['pet'], target: 'mr', context: 0 });
    expect(parseTask('T1-to-FLAIR:2.5d=2')).toEqual({ sources: ['t1'], target: 'flair', context: 2 });
    for (const t of ['mr-to-ct', 't1+t2-to-ct', 'pet-to-mr', 't1-to-flair:2.5d=1'])
      expect(formatTask(parseTask(t))).toBe(t);
  });

  it('reads the MR scale, alone or with the 2.5D context, and prints the canonical text', () => {
    expect(parseTask('mr-to-ct:mr=landmarks')).toEqual({
      sources: ['mr'],
      target: 'ct',
      context: 0,
      mrScale: 'landmarks',
    });
    for (const t of [
      'mr-to-ct:mr=landmarks',
      't1+t2-to-ct:2.5d=1:mr=landmarks',
      'pet-to-mr:mr=landmarks',
      't1-to-flair:2.5d=3:mr=landmarks',
      't1+pet-to-ct:mr=landmarks',
    ])
      expect(formatTask(parseTask(t))).toBe(t);
    // Either order is read; the 2.5D context comes first in the canonical text.
    expect(formatTask(parseTask('T1+T2-to-CT:MR=Landmarks:2.5D=1'))).toBe('t1+t2-to-ct:2.5d=1:mr=landmarks');
    // The default scale has no text: every existing task and model keeps its meaning.
    expect(formatTask(DEFAULT_TASK)).toBe('mr-to-ct');
    expect(parseTask('mr-to-ct:mr=percentile')).toEqual(DEFAULT_TASK);
    expect(formatTask(parseTask('t1-to-ct:2.5d=1:mr=percentile'))).toBe('t1-to-ct:2.5d=1');
    expect(parseTask('mr-to-ct').mrScale).toBeUndefined();
    // A task from a message or a configuration keeps its scale, and drops the default.
    expect(validateTask({ sources: ['t1'], target: 'ct', context: 0, mrScale: 'landmarks' }).mrScale).toBe(
      'landmarks',
    );
    expect(validateTask({ sources: ['t1'], target: 'ct', mrScale: 'percentile' })).toEqual({
      sources: ['t1'],
      target: 'ct',
      context: 0,
    });
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
    expect(() => parseTask('mr-to-ct:mr=bogus')).toThrow(
      /unknown MR scale "bogus"; known: percentile, landmarks/,
    );
    expect(() => parseTask('mr-to-ct:mr=')).toThrow(/unknown MR scale ""/);
    expect(() => parseTask('t1-to-ct:2.5d=1:mr=nyul')).toThrow(/unknown MR scale "nyul"/);
    expect(() => validateTask({ sources: ['mr'], target: 'ct', mrScale: 3 })).toThrow(/unknown MR scale "3"/);
    expect(() => parseTask('pet-to-ct:mr=landmarks')).toThrow(/pet-to-ct has no MR modality/);
    expect(() => parseTask('mr-to-ct:scale=landmarks')).toThrow(
      /unknown setting ":scale=landmarks"; known: :2.5d=k/,
    );
    expect(() => parseTask('mr-to-ct:landmarks')).toThrow(/unknown setting ":landmarks"/);
    expect(() => parseTask('mr-to-ct:mr=landmarks:mr=percentile')).toThrow(/:mr= is given twice/);
    expect(() => parseTask('mr-to-ct:2.5d=one')).toThrow(/context must be an integer in \[0, 3\], got "one"/);
    expect(() => parseTask('mr-to-ct:')).toThrow(/unknown setting ":"/);
  });
});
