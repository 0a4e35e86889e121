// The CNI protocol layer: environment, stdin configuration, versions,
// results and errors, as the spec and libcni define them.
export * from './errors.js';
export * from './versions.js';
export * from './convert.js';
export * from './env.js';
export * from './config.js';
