// host-local's allocator over the store host functions, in the reference's
// on-disk format (backend/disk): <dataDir>/<network>/<ip> holds
// "<containerID>\r\n<ifname>", last_reserved_ip.<rangeSetIndex> holds the last
// address handed out from that range set, and `lock` is flocked. The store
// lock is held for the whole plugin call, so a snapshot of the directory taken
// once stays true while this call updates it.
import { HostError, IP, IPConfig, Result, Tuple2, store } from "../sdk";
import { Range, RangeSet } from "./config";
import { goIPString, goParseIP, trimSpace } from "../sdk/gocompat";

const LAST_IP_PREFIX = "last_reserved_ip.";
const LINE_BREAK = "\r\n";

/**
 * The network's directory, touched only where needed: an ADD asks for the
 * attachment's leases and the last reserved address in one host call
 * (store.find-get) and reserves a candidate in one more (store.create, which
 * creates the lease only if absent, as the reference's O_EXCL does); a DEL
 * releases in one (store.remove-found).
 */
export class LeaseStore {
  /** Opens (creating and locking) <dataDir>/<network>. */
  open(network: string, dataDir: string): HostError | null {
    return store.open(network, dataDir);
  }

  /** Creates the lease file for ip unless it exists, and records it as the range set's last, in one host call. */
  reserve(id: string, ifname: string, ip: IP, rangeID: string): Result<bool, HostError> {
    const key = goIPString(ip);
    const also = new Array<Tuple2<string, string>>();
    also.push(new Tuple2<string, string>(LAST_IP_PREFIX + rangeID, key));
    return store.create(key, trimSpace(id) + LINE_BREAK + ifname, also);
  }

  /**
   * The attachment's addresses (getByID) and the range set's last reserved
   * address (lastReservedIP) in one host call; should that fail, each alone.
   */
  lookup(id: string, ifname: string, rangeID: string): Holdings {
    const values = new Array<string>();
    values.push(trimSpace(id) + LINE_BREAK + ifname);
    values.push(trimSpace(id));
    const keys = new Array<string>();
    keys.push(LAST_IP_PREFIX + rangeID);
    const r = store.findGet(values, keys);
    const out = new Holdings();
    if (!r.ok) {
      out.held = this.getByID(id, ifname);
      out.last = this.lastReservedIP(rangeID);
      return out;
    }
    out.held = addresses(r.value.found);
    const last = r.value.values[0];
    out.last = last === null ? null : goParseIP(last!); // net.ParseIP: no trimming
    return out;
  }

  /** The address in last_reserved_ip.<rangeID>, or null (missing or not an address). */
  lastReservedIP(rangeID: string): IP | null {
    const v = store.get(LAST_IP_PREFIX + rangeID);
    if (!v.ok || v.value === null) return null;
    return goParseIP(v.value!); // net.ParseIP: no trimming
  }

  /** Keys of files holding exactly `match` (after trimming), as FindByKey walks them. */
  private holding(match: string): Array<string> {
    const values = new Array<string>();
    values.push(match);
    const r = store.find(values);
    return r.ok ? r.value : new Array<string>();
  }

  /** Removes every file holding `match`; whether one was removed (ReleaseByKey). */
  private releaseByKey(match: string): bool {
    const values = new Array<string>();
    values.push(match);
    const r = store.removeFound(values);
    return r.ok && r.value.length > 0;
  }

  /** Whether the attachment holds any address (files from before ifname was stored count). */
  findByID(id: string, ifname: string): bool {
    if (this.holding(trimSpace(id) + LINE_BREAK + ifname).length > 0) return true;
    return this.holding(trimSpace(id)).length > 0;
  }

  /** Releases the attachment's addresses; only if none, files naming just the container. */
  releaseByID(id: string, ifname: string): void {
    if (!this.releaseByKey(trimSpace(id) + LINE_BREAK + ifname)) this.releaseByKey(trimSpace(id));
  }

  /** The addresses held by the attachment, or by the container in the old format. */
  getByID(id: string, ifname: string): Array<IP> {
    const values = new Array<string>();
    values.push(trimSpace(id) + LINE_BREAK + ifname);
    values.push(trimSpace(id));
    const r = store.find(values);
    return r.ok ? addresses(r.value) : new Array<IP>();
  }

  /**
   * GC: removes every lease file (a file named as an address) whose owner is
   * not among the valid attachments. Old files name only the container: they
   * stay while any valid attachment has that container.
   */
  releaseAllExcept(valid: Array<string>, validIDs: Array<string>): Array<string> {
    const released = new Array<string>();
    const all = store.entries();
    if (!all.ok) return released;
    for (let i = 0; i < all.value.length; i++) {
      const k = all.value[i].f0;
      if (goParseIP(k) === null) continue;
      const c = trimSpace(all.value[i].f1);
      const live = c.indexOf(LINE_BREAK) >= 0 ? valid.includes(c) : validIDs.includes(c);
      if (!live && store.remove(k) === null) released.push(k);
    }
    return released;
  }
}

/** What an ADD needs to know before it picks an address. */
export class Holdings {
  held: Array<IP> = new Array<IP>();
  last: IP | null = null;
}

/** The keys that are addresses, as addresses. */
function addresses(keys: Array<string>): Array<IP> {
  const out = new Array<IP>();
  for (let i = 0; i < keys.length; i++) {
    const ip = goParseIP(keys[i]);
    if (ip !== null) out.push(ip);
  }
  return out;
}

/** Round-robin over a range set, from after the last reserved address (RangeIter). */
class RangeIter {
  set: RangeSet;
  idx: i32 = 0;
  cur: IP | null = null;
  startIP: IP | null = null;
  /** the range the last address returned by next() is in */
  range: Range | null = null;

  constructor(set: RangeSet, last: IP | null) {
    this.set = set;
    if (last !== null) {
      for (let i = 0; i < set.ranges.length; i++) {
        if (set.ranges[i].contains(last)) {
          this.idx = i;
          this.cur = copyIP(last);
          break;
        }
      }
    }
  }

  /** The next candidate (a live cursor: copy it to keep it), or null when the set is used up. */
  next(): IP | null {
    while (true) {
      let r = this.set.ranges[this.idx];
      let cur = this.cur;
      if (cur === null) {
        cur = copyIP(r.start);
        this.cur = cur;
        this.startIP = copyIP(cur);
        if (cur.equals(r.gw)) continue;
        this.range = r;
        return cur;
      }
      if (cur.equals(r.end)) {
        this.idx = (this.idx + 1) % this.set.ranges.length;
        r = this.set.ranges[this.idx];
        setIP(cur, r.start);
      } else {
        increment(cur);
      }
      const start = this.startIP;
      if (start === null) this.startIP = copyIP(cur);
      else if (cur.equals(start)) return null;
      if (cur.equals(r.gw)) continue;
      this.range = r;
      return cur;
    }
  }
}

function copyIP(ip: IP): IP {
  const c = new IP(ip.family);
  for (let i = 0; i < 16; i++) c.bytes[i] = ip.bytes[i];
  return c;
}

function setIP(dst: IP, src: IP): void {
  dst.family = src.family;
  for (let i = 0; i < 16; i++) dst.bytes[i] = src.bytes[i];
}

/** In place: the cursor never passes the range's end, so this cannot overflow. */
function increment(ip: IP): void {
  const lo = ip.family == 4 ? 12 : 0;
  for (let i = 15; i >= lo; i--) {
    if (ip.bytes[i] != 0xff) { ip.bytes[i] = ip.bytes[i] + 1; return; }
    ip.bytes[i] = 0;
  }
}

export class Allocation {
  ip: IPConfig | null = null;
  /** the reference's message when no address could be given */
  err: string = "";
  hostErr: HostError | null = null;
}

function failed(msg: string): Allocation {
  const a = new Allocation();
  a.err = msg;
  return a;
}

function ipConfig(ip: IP, r: Range): IPConfig {
  const c = new IPConfig();
  c.address = goIPString(ip) + "/" + r.prefix.toString();
  c.gateway = goIPString(r.gw);
  return c;
}

/** IPAllocator.Get: the requested address, or the next free one of the set. */
export function allocate(s: LeaseStore, set: RangeSet, rangeIndex: i32, id: string, ifname: string, requested: IP | null): Allocation {
  const rangeID = rangeIndex.toString();
  if (requested !== null) {
    const r = set.rangeFor(requested);
    if (r === null) return failed(goIPString(requested) + " not in range set " + set.toString());
    if (requested.equals(r.gw)) return failed("requested ip " + goIPString(requested) + " is subnet's gateway");
    const res = s.reserve(id, ifname, requested, rangeID);
    if (!res.ok) { const a = new Allocation(); a.hostErr = res.error; return a; }
    if (!res.value) return failed("requested IP address " + goIPString(requested) + " is not available in range set " + set.toString());
    const a = new Allocation();
    a.ip = ipConfig(requested, r);
    return a;
  }

  // one address per attachment and range set
  const look = s.lookup(id, ifname, rangeID);
  const held = look.held;
  for (let i = 0; i < held.length; i++) {
    if (set.contains(held[i])) {
      return failed(goIPString(held[i]) + " has been allocated to " + id + ", duplicate allocation is not allowed");
    }
  }

  let last = look.last;
  if (last !== null && !set.contains(last)) last = null; // ranges changed: start over
  const it = new RangeIter(set, last);
  while (true) {
    const cand = it.next();
    if (cand === null) break;
    const res = s.reserve(id, ifname, cand, rangeID);
    if (!res.ok) { const a = new Allocation(); a.hostErr = res.error; return a; }
    if (res.value) {
      const a = new Allocation();
      a.ip = ipConfig(cand, it.range!);
      return a;
    }
  }
  return failed("no IP addresses available in range set: " + set.toString());
}
