/**
 * A 3D image with its geometry. Conventions follow NIfTI:
 * - `data` holds values in physical units (Hounsfield units for CT) as Float32, x fastest:
 *   index = x + nx * (y + ny * z); a 2D image is a volume with nz = 1;
 * - `affine` is the 4x4 row-major matrix mapping voxel indices (i, j, k, 1) to world coordinates in
 *   millimetres, RAS+ (+x towards the patient's Right, +y Anterior, +z Superior). DICOM's LPS+
 *   coordinates are converted by negating x and y.
 */
export interface Volume {
  data: Float32Array;
  dims: [number, number, number];
  spacing: [number, number, number];
  affine: Float64Array;
}

/** The diagonal affine of a volume with the given spacing, origin at voxel 0. */
export function diagonalAffine(
  spacing: readonly [number, number, number],
  origin: readonly [number, number, number] = [0, 0, 0],
): Float64Array {
  const a = new Float64Array(16);
  a[0] = spacing[0];
  a[5] = spacing[1];
  a[10] = spacing[2];
  a[3] = origin[0];
  a[7] = origin[1];
  a[11] = origin[2];
  a[15] = 1;
  return a;
}

/** Voxel spacing implied by an affine (lengths of its first three columns). */
export function spacingOf(affine: Float64Array): [number, number, number] {
  const col = (c: number) => Math.hypot(affine[c], affine[4 + c], affine[8 + c]);
  return [col(0), col(1), col(2)];
}

/** A new volume of the same geometry with the given data. */
export function withData(ref: Volume, data: Float32Array): Volume {
  if (data.length !== ref.data.length)
    throw new RangeError(`data has ${data.length} voxels; the volume has ${ref.data.length}`);
  return { data, dims: [...ref.dims], spacing: [...ref.spacing], affine: Float64Array.from(ref.affine) };
}

/** Whether two volumes share dims and affine (to `tol` mm). */
export function sameGeometry(a: Volume, b: Volume, tol = 1e-3): boolean {
  if (a.dims.some((d, i) => d !== b.dims[i])) return false;
  for (let i = 0; i < 16; i++) if (Math.abs(a.affine[i] - b.affine[i]) > tol) return false;
  return true;
}

/** Number of voxels. */
export function voxelCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
