/** Kinds of problems with medical image files and datasets. */
export type ImagingErrorCode =
  | 'FILE_NOT_FOUND'
  | 'CORRUPT_FILE'
  | 'TRUNCATED_FILE'
  | 'UNSUPPORTED_FORMAT'
  | 'UNSUPPORTED_TRANSFER_SYNTAX'
  | 'INVALID_ARGUMENT'
  | 'SHAPE_MISMATCH'
  | 'NON_FINITE_VOXELS'
  | 'DATASET_PROBLEM';

/** An error about a file or dataset; the message names the file and the problem. */
export class ImagingError extends Error {
  constructor(
    readonly code: ImagingErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'ImagingError';
  }
}
