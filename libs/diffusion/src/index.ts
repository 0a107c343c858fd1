/**
 * @fedsynth/diffusion — the conditional diffusion U-Net that translates MRI to CT: backends,
 * model, schedules, objectives, trainer, samplers and weights.
 */
export {
  BACKENDS,
  type BackendChoice,
  type BackendInfo,
  type BackendName,
  defaultThreads,
  GPU_HINT,
  selectBackend,
} from './backend';
export {
  createInitialModel,
  decodeModel,
  encodeModel,
  loadModel,
  type ModelMetadata,
  saveModel,
} from './checkpoint';
export {
  isMriToCt,
  readTaskInputs,
  synthesizeTask,
  synthesizeVolume,
  type TaskInputs,
  taskInputsOf,
  writeTaskOutput,
} from './cli/synthesize';
export { type ConvGradients, conv2d, convGrads, hasNativeConvGradients } from './conv';
export { BatchSampler, loadSliceDataset, loadTaskDataset, type SliceDataset, stackSlices } from './data';
export { type EvalOptions, type EvalResult, evaluateSlices, evaluateSlicesParallel } from './evaluate';
export { type CudaInfo, cudaInfo, describeCuda, type GpuInfo } from './gpu-info';
export { groupNorm } from './group-norm';
export {
  describePlan,
  estimatePeakBytes,
  largestSize,
  MemoryPlanError,
  memoryBudget,
  planSynthesis,
  planTraining,
  planTrainingRun,
  type TrainingPlan,
  trainingCapacity,
} from './memory-plan';
export { alphaTerms, type PredictionType, predictionTarget, toX0AndEps } from './objective';
export { AdamOptimizer, DEFAULT_OPTIMIZER, type OptimizerConfig } from './optimizer';
export { DataParallelTrainer } from './parallel';
export { type ParallelSampleOptions, ParallelSampler } from './parallel-sampler';
export { seededUniform } from './rng';
export {
  combineSamples,
  type Denoiser,
  ddimSample,
  ddpmSample,
  modelDenoiser,
  type SampleOptions,
  type SampleResult,
  samplingTimesteps,
} from './sampler';
export { makeSchedule, type NoiseSchedule, SCHEDULES, type ScheduleName } from './schedule';
export { tf } from './tf';
export { type Batch, DEFAULT_TRAINER_CONFIG, type StepResult, Trainer, type TrainerConfig } from './trainer';
export {
  DEFAULT_UNET_CONFIG,
  parameterSpecs,
  silu,
  timestepEmbedding,
  UNet,
  type UNetConfig,
  unetConfigFor,
  upsampleNearest2x,
  validateUNetConfig,
} from './unet';
export { WeightShift } from './weight-shift';
export * from './weights';
