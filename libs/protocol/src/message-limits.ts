import { SHARE_CIPHERTEXT_BYTES, SHARE_VALUE_BYTES } from '@fedsynth/secure-agg';
import { MAX_CHUNK_BYTES } from './chunked';

/** How much one socket.io message may carry: binary attachments (count, total bytes) and its text part. */
export interface MessageLimit {
  /** Binary attachments of one message. */
  attachments: number;
  /** Their total size in bytes. */
  attachmentBytes: number;
}

/** What a connection may send, per message: the text of a packet, and the attachments of each event. */
export interface ConnectionLimits {
  /** Characters of one packet's text part (the JSON with attachment placeholders). */
  maxTextChars: number;
  /** The attachment limit of a binary message, by event name ('(ack)' for acknowledgements). */
  attachments(event: string): MessageLimit;
}

const NONE: MessageLimit = { attachments: 0, attachmentBytes: 0 };
/** The login answer carries a 32-byte key, a 32-byte nonce and a 64-byte signature. */
const LOGIN: MessageLimit = { attachments: 3, attachmentBytes: 32 + 32 + 64 };

/**
 * Before login an agent may send only what logging in takes: packets of at most 1 KiB of text and
 * the login answer's three small binary fields. Anything else closes the connection before it can
 * make the coordinator hold memory.
 */
export const PRE_LOGIN_LIMITS: ConnectionLimits = {
  maxTextChars: 1024,
  attachments: (event) => (event === 'auth.response' ? LOGIN : NONE),
};

/**
 * What a logged-in agent of a federation with at most `maxSites` sites per round may send per
 * message: the secure-aggregation messages grow with the neighbourhood (one share per neighbour),
 * a masked chunk is one chunk, everything else carries no binary data.
 */
export function agentLimits(maxSites: number): ConnectionLimits {
  const n = Math.max(3, Math.floor(maxSites));
  const session = 32;
  const byEvent: Record<string, MessageLimit> = {
    'auth.response': LOGIN,
    'secagg.advertise': { attachments: 4, attachmentBytes: session + 32 + 32 + 64 },
    'secagg.shares': { attachments: 1 + n, attachmentBytes: session + n * SHARE_CIPHERTEXT_BYTES },
    'secagg.consistency': { attachments: 2, attachmentBytes: session + 64 },
    'secagg.unmask': { attachments: 1 + n, attachmentBytes: session + n * SHARE_VALUE_BYTES },
    'secagg.masked-chunk': { attachments: 1, attachmentBytes: MAX_CHUNK_BYTES },
  };
  return {
    // Share and unmask lists name one neighbour per entry (about 70 characters each).
    maxTextChars: 16 * 1024 + 128 * n,
    attachments: (event) => byEvent[event] ?? NONE,
  };
}
