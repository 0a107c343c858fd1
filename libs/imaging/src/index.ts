/**
 * @fedsynth/imaging — medical volumes (NIfTI, DICOM series, PNG), paired phantoms, dataset
 * handling and the SynthRAD2023 image metrics, on plain typed arrays.
 */
export { type AugmentOptions, augmentPair } from './augment';
export { computeBodyMask, otsu } from './body-mask';
export {
  checkDataset,
  checkTaskDataset,
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
export {
  type DicomSeries,
  listDicomSeries,
  type PetDicomTags,
  readDicomSeries,
  readPetTags,
} from './dicom';
export { type DicomWriteOptions, writeDicomSeries } from './dicom-write';
export { ctGrey, sideBySide, stretchGrey, withColourBar } from './display';
export { ImagingError, type ImagingErrorCode } from './errors';
export { gaussianBlur3d, resize2d, resizeNearest2d } from './filters';
export { type MemorizationFigures, memorizationFigures, nearestDistances } from './memorization';
export {
  computeIntensityMetrics,
  computeMetrics,
  HU_RANGE,
  type ImageMetrics,
  type IntensityMetrics,
  maskedMae,
  maskedPearson,
  maskedPsnr,
  maskedSsim,
  UNIT_RANGE,
} from './metrics';
export {
  MR_LANDMARK_PERCENTILES,
  MR_SCALES,
  MR_STANDARD_SCALE,
  type MrLandmarks,
  type MrScale,
  mrLandmarks,
  standardizeMr,
} from './mr-standardize';
export { encodeNifti, parseNifti, readNifti, writeNifti } from './nifti';
export {
  huToUnit,
  type MrNormalization,
  normalizeFor,
  normalizeMr,
  SUV_MAX,
  suvToUnit,
  unitToHu,
  unitToNative,
  unitToSuv,
} from './normalize';
export {
  generatePhantomPair,
  generatePhantomSubject,
  inversionRecovery,
  type MrModality,
  type MrSequence,
  mrSequence,
  nullingTi,
  PET_FWHM_MM,
  PET_SUV,
  PHANTOM_DICOM_SERIES,
  type PhantomOptions,
  type PhantomSubject,
  type PhantomSubjectOptions,
  SITE_PROFILES,
  type SiteProfile,
  spinEcho,
  TISSUES,
  Tissue,
  writePhantomDataset,
} from './phantom';
export { encodePng, pngToHu, readPng, writePng } from './png';
export { quantile, quantiles } from './quantile';
export { gaussian, mulberry32, subSeed } from './rng';
export {
  DEFAULT_MODALITY_NAMES,
  type FoundModality,
  findModality,
  findSubjectDirs,
  type ModalityMatch,
  readModality,
  type SubjectDir,
} from './subject-files';
export { type PetDose, petDoseFromDicom, petDoseFromSidecar, suvFactor } from './suv';
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
export {
  conditionOf,
  type NormalizedSubject,
  normalizeTaskSubject,
  type TaskSlice,
  type TaskSubject,
  taskBodyMask,
  taskSlicesOf,
} from './task-data';
export {
  petSuvFactor,
  readTaskSubject,
  scanTaskSubjects,
  type TaskSubjectFiles,
} from './task-subjects';
export { diagonalAffine, sameGeometry, spacingOf, type Volume, voxelCount, withData } from './volume';
