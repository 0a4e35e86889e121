// The error a host function gives the guest as result::err(host-error).
/** A refusal or failure the guest sees as result::err(host-error). */
export class HostError extends Error {
  constructor(public readonly code: string, message: string) { super(message); }
}
