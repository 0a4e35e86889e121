// groups: host objects that several attachments of one network share (the
// vpc-bridge plugin's bridge, companion link and sysctls per ENI), counted
// through the ledger so that the LAST attachment's sweep removes them.
//
//   - groups.join(g) takes the group's lock (a flock beside the network's
//     journals, held until the CNI call ends) and copies into this
//     attachment's journal the live entries of group g that other journals
//     of the network hold (from one holder: every holder has the same set).
//     Between join and seal, every ledger entry the gate writes carries
//     `group: g`. Copied link entries give this attachment its rights on the
//     shared links (it may attach its port to the bridge).
//   - The sweep (host/sweep.ts) undoes an entry with a group only when no
//     other journal of the network holds a live entry of that group; else it
//     only forgets it. It takes the same lock for the decision and the undo,
//     so a DEL and a concurrent ADD never race: either the ADD copied the
//     entries first (the DEL then sees a holder and leaves the objects), or the
//     DEL removed them first (the ADD then sees nothing to copy and builds).
//   - A group name is scoped by the host to the network (the journal
//     directory) and to the plugin that owns the attachment; the guest cannot
//     reach another plugin's or network's group.
import { closeSync, constants, openSync } from 'node:fs';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { Ledger, type LedgerEntry } from '../gate/ledger.js';
import { flock } from '../kernel/native.js';

const GROUP = /^[A-Za-z0-9_.:-]{1,64}$/;
const SESSION = 'groups.lock';
const pause = new Int32Array(new SharedArrayBuffer(4));

/** Takes the exclusive lock of a group, waiting until deadline at most. Returns the fd to close. */
export function lockGroup(path: string, deadline: number): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (e) {
    throw new HostError('ELEDGER', `cannot open the group lock ${path}: ${(e as Error).message}`);
  }
  for (;;) {
    try {
      flock(fd, true, false);
      return fd;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EWOULDBLOCK' && code !== 'EAGAIN') { closeSync(fd); throw new HostError('ELEDGER', `cannot lock ${path}: ${(e as Error).message}`); }
    }
    if (Date.now() >= deadline) {
      closeSync(fd);
      throw new HostError('ETIMEDOUT', `the shared objects' lock ${path} is held by another CNI call that did not finish in time`);
    }
    Atomics.wait(pause, 0, 0, 5);
  }
}

const ofGroup = (plugin: string, group: string) => (e: LedgerEntry) => e.group === group && e.plugin === plugin;

/** Does a journal of the network other than `file` hold a live entry of the group? */
export function heldElsewhere(file: string, plugin: string, group: string): boolean {
  return Ledger.siblings(file).some((j) => j.live.some((l) => ofGroup(plugin, group)(l.entry)));
}

export const groups: HostInterface = {
  join: {
    grant: always('groups'),
    check: (ctx, group: string) => {
      if (typeof group !== 'string' || !GROUP.test(group)) return `group name '${String(group).slice(0, 80)}' is not 1-64 of A-Z a-z 0-9 _ . : -`;
      if (ctx.depth > 0) return 'only the plugin the runtime called may join a group';
      if (ctx.group !== undefined) return `already in group '${ctx.group}' (seal it first)`;
      return null;
    },
    run: (ctx: CallContext, group: string) => {
      const lockPath = Ledger.groupLockPath(ctx.ledger.file, ctx.owner, group);
      if (!ctx.session.has(`${SESSION}:${group}`)) {
        const fd = lockGroup(lockPath, ctx.deadline - 50);
        ctx.session.set(`${SESSION}:${group}`, { close: () => closeSync(fd) });
      }
      const mine = ofGroup(ctx.owner, group);
      let copied = 0;
      // this attachment holds the group already (ADD after an ADD): nothing to copy
      if (!ctx.ledger.entries.some(mine)) {
        const holder = Ledger.siblings(ctx.ledger.file).find((j) => j.live.some((l) => mine(l.entry)));
        for (const l of holder?.live.filter((x) => mine(x.entry)) ?? []) {
          const [id] = ctx.ledger.intend([{ ...l.entry, copiedFrom: holder!.file.slice(-200) }]);
          if (l.state === 'done') ctx.ledger.confirm(id);
          if (l.entry.kind === 'link' && typeof l.entry.name === 'string') ctx.owned.own(l.entry.ns ?? 'host', l.entry.name, typeof l.entry.index === 'number' ? l.entry.index : 0);
          copied++;
        }
      }
      ctx.group = group;
      return copied;
    },
  },
  seal: {
    grant: always('groups'), reads: true,
    run: (ctx) => { ctx.group = undefined; },
  },
};

/** For the sweep: the locks of the groups a set of entries belongs to, taken once per sweep. */
export function groupLocks(ledger: Ledger, entries: LedgerEntry[], deadline: number): { close(): void } {
  const fds: number[] = [];
  const seen = new Set<string>();
  try {
    for (const e of entries) {
      if (typeof e.group !== 'string' || seen.has(`${e.plugin}\0${e.group}`)) continue;
      seen.add(`${e.plugin}\0${e.group}`);
      fds.push(lockGroup(Ledger.groupLockPath(ledger.file, e.plugin, e.group), deadline));
    }
  } catch (err) {
    for (const fd of fds) closeSync(fd);
    throw err;
  }
  return { close: () => { for (const fd of fds) closeSync(fd); } };
}
