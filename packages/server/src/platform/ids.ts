import { v7 } from 'uuid';

/** Time-ordered UUIDs (v7): primary keys that sort by creation, which keeps cursor pagination stable and indexes compact. */
export const newId = (): string => v7();

export const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());
