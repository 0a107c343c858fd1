import { readNifti } from './nifti';
import { pngToHu, readPng } from './png';
import type { Volume } from './volume';

/** Reads NIfTI, or a PNG slice (a CT target in PNG is converted to HU, see pngToHu). */
export async function readImage(path: string, isCt: boolean): Promise<Volume> {
  if (!path.endsWith('.png')) return readNifti(path);
  const { volume, bitDepth } = await readPng(path);
  return isCt ? { ...volume, data: pngToHu(volume.data, bitDepth) } : volume;
}
