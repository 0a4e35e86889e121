// The base every plugin extends. It speaks CNI defaults so a plugin only
// writes the commands it supports.
import { Exports, setExports } from "./generated/world";
import { CniError, Request, Result } from "./generated/types";
import { ERR_UNSUPPORTED_FIELD, cniError } from "./cni";

export const SPEC_VERSIONS: Array<string> = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

export class CniPlugin extends Exports {
  add(req: Request): Result<string, CniError> {
    return Result.failure<string, CniError>(cniError(ERR_UNSUPPORTED_FIELD, "ADD is not supported by this plugin"));
  }
  del(req: Request): CniError | null {
    return cniError(ERR_UNSUPPORTED_FIELD, "DEL is not supported by this plugin");
  }
  check(req: Request): CniError | null {
    return cniError(ERR_UNSUPPORTED_FIELD, "CHECK is not supported by this plugin");
  }
  /** Nothing to collect unless the plugin keeps state. */
  gc(req: Request): CniError | null { return null; }
  /** Ready unless the plugin says otherwise. */
  status(req: Request): CniError | null { return null; }
  version(): Array<string> { return SPEC_VERSIONS; }
}

/** Call once at the plugin's top level. */
export function registerPlugin(p: CniPlugin): void { setExports(p); }
