/**
 * @fedsynth/imaging — medical volumes (NIfTI, DICOM series, PNG), paired phantoms, dataset
 * handling and the SynthRAD2023 image metrics, on plain typed arrays.
 */
export { type AugmentOptions, augmentPair } from './augment';
export { computeBodyMask, otsu } from './body-mask';
export {
  checkDataset,
  type DataCheckReport,
  type DataIssue,
  type DataIssueKind,
  dataProblemLines,
  type SubjectReport,
} from './data-check';
export {
  type LoadedSubject,
  listSubjects,
  loadSlicePairs,
  loadSubject,
  type ModalityNames,
  type SlicePair,
  type SubjectEntry,
  scanSubjects,
  slicePairsOf,
  splitSubjects,
} from './dataset';
export { type DicomSeries, listDicomSeries, readDicomSeries } from './dicom';
export { ctGrey, sideBySide, stretchGrey } from './display';
export { ImagingError, type ImagingErrorCode } from './errors';
export { gaussianBlur3d, resize2d, resizeNearest2d } from './filters';
export {
  computeMetrics,
  HU_RANGE,
  type ImageMetrics,
  maskedMae,
  maskedPearson,
  maskedPsnr,
  maskedSsim,
} from './metrics';
export { encodeNifti, parseNifti, readNifti, writeNifti } from './nifti';
export { huToUnit, type MrNormalization, normalizeMr, quantile, unitToHu } from './normalize';
export {
  generatePhantomPair,
  type PhantomOptions,
  SITE_PROFILES,
  type SiteProfile,
  spinEcho,
  TISSUES,
  Tissue,
  writePhantomDataset,
} from './phantom';
export { encodePng, pngToHu, readPng, writePng } from './png';
export { gaussian, mulberry32, subSeed } from './rng';
export {
  conditionChannels,
  DEFAULT_TASK,
  formatTask,
  type IntensityKind,
  kindOf,
  MAX_CONTEXT,
  MODALITIES,
  type Modality,
  parseTask,
  type TaskSpec,
  taskModalities,
  validateTask,
} from './task';
export { diagonalAffine, sameGeometry, spacingOf, type Volume, voxelCount, withData } from './volume';
