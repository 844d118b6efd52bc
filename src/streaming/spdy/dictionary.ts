/**
 * The fixed zlib dictionary that primes both header-block compression contexts of a SPDY/3 session
 * (SPDY draft 3, section 2.6.10.1). Both peers must use exactly these bytes: zlib puts the
 * dictionary's Adler-32 (0xe3c6a7c2) in the stream header, and a single differing byte makes the
 * peer's inflate fail.
 *
 * Layout: common header names and values, each preceded by its length as a 32-bit big-endian
 * integer, followed by one run of unprefixed text (status codes, reason phrases, date words and
 * common values).
 */

/** Words written with a 4-byte length prefix, in dictionary order. */
const PREFIXED_WORDS: readonly string[] = [
  'options',
  'head',
  'post',
  'put',
  'delete',
  'trace',
  'accept',
  'accept-charset',
  'accept-encoding',
  'accept-language',
  'accept-ranges',
  'age',
  'allow',
  'authorization',
  'cache-control',
  'connection',
  'content-base',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'etag',
  'expect',
  'expires',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'pragma',
  'proxy-authenticate',
  'proxy-authorization',
  'range',
  'referer',
  'retry-after',
  'server',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'vary',
  'via',
  'warning',
  'www-authenticate',
  'method',
  'get',
  'status',
  '200 OK',
  'version',
  'HTTP/1.1',
  'url',
  'public',
  'set-cookie',
  'keep-alive',
  'origin',
];

/** Status codes without reason phrases, concatenated with no separator. */
const BARE_STATUS_CODES: readonly string[] = [
  '100',
  '101',
  '201',
  '202',
  '205',
  '206',
  '300',
  '302',
  '303',
  '304',
  '305',
  '306',
  '307',
  '402',
  '405',
  '406',
  '407',
  '408',
  '409',
  '410',
  '411',
  '412',
  '413',
  '414',
  '415',
  '416',
  '417',
  '502',
  '504',
  '505',
];

/** Status lines, concatenated with no separator. */
const STATUS_LINES: readonly string[] = [
  '203 Non-Authoritative Information',
  '204 No Content',
  '301 Moved Permanently',
  '400 Bad Request',
  '401 Unauthorized',
  '403 Forbidden',
  '404 Not Found',
  '500 Internal Server Error',
  '501 Not Implemented',
  '503 Service Unavailable',
];

/** The unprefixed tail, in order. Note the spellings ("Sept", "utf-,") are as published. */
const TRAILING_TEXT: readonly string[] = [
  BARE_STATUS_CODES.join(''),
  STATUS_LINES.join(''),
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec ',
  '00:00:00 ',
  'Mon, Tue, Wed, Thu, Fri, Sat, Sun, ',
  'GMT',
  'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,',
  'text/plain,text/javascript,',
  'public',
  'private',
  'max-age=',
  'gzip,deflate,sdch',
  'charset=utf-8',
  'charset=iso-8859-1,',
  'utf-,',
  '*,',
  'enq=0.',
];

function build(): Buffer {
  const parts: Buffer[] = [];
  for (const word of PREFIXED_WORDS) {
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(word.length, 0);
    parts.push(prefix, Buffer.from(word, 'latin1'));
  }
  parts.push(Buffer.from(TRAILING_TEXT.join(''), 'latin1'));
  return Buffer.concat(parts);
}

/** The SPDY/3 header dictionary (1423 bytes). Treat as read-only. */
export const SPDY3_DICTIONARY: Buffer = build();
