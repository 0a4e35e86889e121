// delegate: run another plugin (usually IPAM) for this same attachment.
// Components run in their own sandbox with their own grants; other types
// run as binaries from CNI_PATH only when policy lists them in allowExec.
import { type CallContext, type DelegateCommand, type HostInterface, always } from '../gate/gate.js';
import { CniError } from '../cni/errors.js';

const g = (ctx: CallContext) => ctx.plugin.grants.delegate;

export const delegate: HostInterface = {
  run: {
    grant: always('delegate'),
    // what the delegate does is gated and recorded on its own, call by call
    reads: true,
    check: (ctx, type: string) => {
      const grant = g(ctx);
      const types = grant === true ? ['*'] : grant ? grant.types ?? [] : [];
      if (!types.includes('*') && !types.includes(type)) return `delegating to '${type}' is not in the plugin's granted "delegate": {"types"}`;
      if (ctx.depth >= 4) return 'delegation nested too deep';
      return null;
    },
    run: (ctx, type: string, cmd: DelegateCommand, config: string) => ctx.delegate(type, cmd, config),
    errorValue: (code, message, cause) => cause instanceof CniError
      ? { code: cause.code, msg: cause.msg, details: cause.details }
      : { code: 999, msg: message, details: code },
  },
};
