// CNI spec versions: what we speak, how versions compare, which commands a
// version allows, and the VERSION command's answer.

import { CniError, CniErrorCode } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const CURRENT_VERSION: CniVersion = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
export const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

/** The first spec version in which each command exists. */
export const COMMAND_MIN_VERSION: Readonly<Record<CniCommand, CniVersion>> = {
  ADD: '0.1.0',
  DEL: '0.1.0',
  VERSION: '0.1.0',
  CHECK: '0.4.0',
  GC: '1.1.0',
  STATUS: '1.1.0',
};

/** Result shapes: 0.1/0.2 (ip4/ip6), 0.3.x/0.4 (ips with version), 1.x. */
export type ResultFamily = '020' | '040' | '100';

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/**
 * Split a version into [major, minor, patch]. As in libcni, an empty string
 * means 0.1.0 (the version before cniVersion existed) and missing trailing
 * parts are zero.
 */
export function parseVersion(v: string): [number, number, number] {
  if (v === '') return [0, 1, 0];
  // the versions we speak come by every call, some many times: split once (a copy each time)
  const known = knownParts.get(v);
  if (known) return [known[0], known[1], known[2]];
  const parts = v.split('.');
  if (parts.length > 3 || !parts.every((p) => /^\d+$/.test(p))) {
    throw new CniError(CniErrorCode.DecodingFailure, `invalid CNI version "${v}"`, 'expected MAJOR.MINOR.PATCH, e.g. "1.0.0"');
  }
  const [major = 0, minor = 0, patch = 0] = parts.map(Number);
  return [major, minor, patch];
}

const knownParts = new Map<string, readonly [number, number, number]>(
  SUPPORTED_VERSIONS.map((v) => [v, v.split('.').map(Number) as [number, number, number]]));

/** Negative, zero or positive as a is older than, equal to or newer than b. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  }
  return 0;
}

function familyOf(v: CniVersion): ResultFamily {
  if (compareVersions(v, '0.3.0') < 0) return '020';
  if (compareVersions(v, '1.0.0') < 0) return '040';
  return '100';
}
const families = new Map<string, ResultFamily>(SUPPORTED_VERSIONS.map((v) => [v, familyOf(v)]));

export function resultFamily(v: CniVersion): ResultFamily {
  return families.get(v) ?? familyOf(v);
}

function unsupported(v: string): CniError {
  return new CniError(
    CniErrorCode.IncompatibleVersion,
    `unsupported CNI version "${v}"`,
    `supported versions are ${SUPPORTED_VERSIONS.join(', ')}; set "cniVersion" in the network configuration to one of them`,
  );
}

/**
 * The version a request is served in: the config's own, since every plugin
 * here speaks all supported versions. A missing or empty cniVersion means
 * 0.1.0, as libcni reads it.
 */
export function negotiate(configVersion: string | undefined): CniVersion {
  const v = configVersion ?? '';
  if (v === '') return '0.1.0';
  if (!isSupportedVersion(v)) throw unsupported(v);
  return v;
}

/**
 * Throw if `command` does not exist at `version`. libcni's skel answers
 * CHECK below 0.4.0 and GC/STATUS below 1.1.0 with code 1, not 2.
 */
export function checkCommandVersion(command: CniCommand, version: CniVersion): void {
  const min = COMMAND_MIN_VERSION[command];
  if (compareVersions(version, min) < 0) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `config version does not allow ${command}`,
      `${command} needs cniVersion ${min} or later; the configuration says ${version}`,
    );
  }
}

export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/**
 * The VERSION command's answer. The spec says to echo the request's
 * cniVersion; when there is none (or it is not a version at all) we answer
 * with the newest, as libcni's skel always does.
 */
export function versionInfo(cniVersion?: unknown): VersionInfo {
  const echo = typeof cniVersion === 'string' && /^\d+\.\d+\.\d+$/.test(cniVersion) ? cniVersion : CURRENT_VERSION;
  return { cniVersion: echo, supportedVersions: [...SUPPORTED_VERSIONS] };
}
