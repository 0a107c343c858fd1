import { InitialSchema1764028800000 } from './1764028800000-initial-schema';

/** Every migration, oldest first. The schema changes only through these (never `synchronize`). */
export const MIGRATIONS = [InitialSchema1764028800000];
