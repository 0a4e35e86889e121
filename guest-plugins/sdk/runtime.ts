// The abort handler every plugin is compiled with (asc --use abort=...).
// AssemblyScript's default imports env.abort, which a component cannot have;
// ours reports the message through the log interface, then traps, and the
// host turns the trap into a CNI error carrying that message.
import { log } from "./generated/imports";
import { Level } from "./generated/types";

export function guestAbort(message: string | null = null, file: string | null = null, line: u32 = 0, column: u32 = 0): void {
  let text = message !== null ? message! : "abort";
  if (file !== null) text += " (" + file! + ":" + line.toString() + ":" + column.toString() + ")";
  log.write(Level.Error, "guest abort: " + text);
  unreachable();
}
