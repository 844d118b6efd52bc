import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CriLogParser, parseCriLog } from './cri-log.js';

const TS = '2026-11-24T11:21:57.026424554+00:00';

describe('parseCriLog', () => {
  it('restores F newlines, joins P chunks and splits the streams', () => {
    const text = [
      `${TS} stdout F hello`,
      `${TS} stderr F oops`,
      `${TS} stdout P part one, `,
      `${TS} stdout P part two, `,
      `${TS} stdout F end`,
      `${TS} stdout P no newline at exit`,
      '',
    ].join('\n');
    const out = parseCriLog(text);
    assert.equal(out.stdout.toString(), 'hello\npart one, part two, end\nno newline at exit');
    assert.equal(out.stderr.toString(), 'oops\n');
  });

  it('keeps spaces and empty lines in the content, accepts extra tags, skips garbage', () => {
    const text = [
      `${TS} stdout F  two  spaces `,
      `${TS} stdout F `,
      `${TS} stdout F`,
      `${TS} stdout F:x tagged`,
      'not a log line',
      `${TS} console F wrong stream`,
      `${TS} stdout X wrong tag`,
      `${TS} stderr F last line without newline`,
    ].join('\n');
    const out = parseCriLog(text);
    assert.equal(out.stdout.toString(), ' two  spaces \n\n\ntagged\n');
    assert.equal(out.stderr.toString(), 'last line without newline\n');
  });

  it('keeps bytes that are not UTF-8 and handles lines split across chunks', () => {
    const raw = Buffer.concat([
      Buffer.from(`${TS} stdout F `),
      Buffer.from([0xff, 0xfe, 0x00, 0x41]),
      Buffer.from('\n'),
    ]);
    const parser = new CriLogParser();
    for (let i = 0; i < raw.length; i += 7) parser.push(raw.subarray(i, i + 7));
    const out = parser.end();
    assert.deepEqual([...out.stdout], [0xff, 0xfe, 0x00, 0x41, 0x0a]);
    assert.equal(out.truncated, false);
  });

  it('caps each stream on its own and says so', () => {
    const parser = new CriLogParser(5);
    parser.push(Buffer.from(`${TS} stdout F 0123456789\n${TS} stderr F ab\n${TS} stdout F more\n`));
    const out = parser.end();
    assert.equal(out.stdout.toString(), '01234');
    assert.equal(out.stderr.toString(), 'ab\n');
    assert.equal(out.truncated, true);
  });
});
