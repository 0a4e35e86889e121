// log: a plugin's messages land in the audit log (the gate records the call
// with its arguments); with CNI_WASM_DEBUG set they also go to stderr.
import type { HostInterface } from '../gate/gate.js';

const MAX = 4096;

export const log: HostInterface = {
  write: {
    grant: null, reads: true,
    run: (ctx, level: string, message: string) => {
      if (level === 'error' && message.startsWith('guest abort: ')) ctx.lastAbort = message.slice(13);
      if (process.env.CNI_WASM_DEBUG) process.stderr.write(`[${ctx.plugin.type}] ${level}: ${String(message).slice(0, MAX)}\n`);
    },
  },
};
