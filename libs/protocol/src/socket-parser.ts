import { Decoder as BaseDecoder, Encoder } from 'socket.io-parser';

/**
 * Binary attachments one socket.io message may carry. socket.io's default (10) is below what a
 * secure-aggregation roster or unmask message holds (four keys per neighbour, one share per peer),
 * so both ends use this parser. Message size stays bounded by maxHttpBufferSize.
 */
export const MAX_ATTACHMENTS = 100_000;

class Decoder extends BaseDecoder {
  constructor() {
    super({ maxAttachments: MAX_ATTACHMENTS });
  }
}

/** The socket.io parser both the coordinator and the agents must use (`{ parser: socketParser }`). */
export const socketParser = { Encoder, Decoder };
