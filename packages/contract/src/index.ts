export * from './errors.js';
export * from './permissions.js';
export * from './schemas.js';
