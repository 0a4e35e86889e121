/** A refusal at load/approval time: the component is not run at all. */
export class PackageError extends Error {}
