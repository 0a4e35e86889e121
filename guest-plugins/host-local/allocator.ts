// host-local's allocator over the store host functions, in the reference's
// on-disk format (backend/disk): <dataDir>/<network>/<ip> holds
// "<containerID>\r\n<ifname>", last_reserved_ip.<rangeSetIndex> holds the last
// address handed out from that range set, and `lock` is flocked. The store
// lock is held for the whole plugin call, so a snapshot of the directory taken
// once stays true while this call updates it.
import { HostError, IP, IPConfig, Result, store } from "../sdk";
import { Range, RangeSet } from "./config";
import { goIPString, goParseIP, trimSpace } from "./gocompat";

const LAST_IP_PREFIX = "last_reserved_ip.";
const LINE_BREAK = "\r\n";

/** Addresses by value, without a string per lookup (the iterator may test many). */
class AddrSet {
  private v4: Set<u32> = new Set<u32>();
  /** IPv6: low 64 bits -> the high halves seen with them */
  private v6: Map<u64, Array<u64>> = new Map<u64, Array<u64>>();

  private static half(ip: IP, from: i32): u64 {
    let v: u64 = 0;
    for (let i = from; i < from + 8; i++) v = (v << 8) | <u64>ip.bytes[i];
    return v;
  }

  addV4(v: u32): void { this.v4.add(v); }
  add(ip: IP): void {
    if (ip.family == 4) { this.v4.add(ip.toU32()); return; }
    const lo = AddrSet.half(ip, 8), hi = AddrSet.half(ip, 0);
    if (!this.v6.has(lo)) this.v6.set(lo, new Array<u64>());
    const a = this.v6.get(lo);
    if (!a.includes(hi)) a.push(hi);
  }
  delete(ip: IP): void {
    if (ip.family == 4) { this.v4.delete(ip.toU32()); return; }
    const lo = AddrSet.half(ip, 8);
    if (!this.v6.has(lo)) return;
    const a = this.v6.get(lo);
    const i = a.indexOf(AddrSet.half(ip, 0));
    if (i >= 0) a.splice(i, 1);
  }
  has(ip: IP): bool {
    if (ip.family == 4) return this.v4.has(ip.toU32());
    const lo = AddrSet.half(ip, 8);
    if (!this.v6.has(lo)) return false;
    return this.v6.get(lo).includes(AddrSet.half(ip, 0));
  }
}

/** A strict dotted quad (as net.ParseIP reads and Go prints it) as a number; -1 if s is not one. */
function parseV4(s: string): i64 {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let v: i64 = 0, part: i32 = 0, digits = 0, dots = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 0x2e;
    if (c == 0x2e) {
      if (digits == 0) return -1;
      v = (v << 8) | <i64>part;
      dots++;
      part = 0; digits = 0;
      continue;
    }
    if (c < 0x30 || c > 0x39) return -1;
    if (digits > 0 && part == 0) return -1; // leading zero
    part = part * 10 + (c - 0x30);
    digits++;
    if (part > 255) return -1;
  }
  return dots == 4 ? v : -1;
}

/** Inserts name into the sorted list unless present (the directory walk is in name order). */
function insertSorted(keys: Array<string>, name: string): void {
  let i = 0;
  while (i < keys.length && keys[i] < name) i++;
  if (i < keys.length && keys[i] == name) return;
  keys.push(name);
  for (let j = keys.length - 1; j > i; j--) keys[j] = keys[j - 1];
  keys[i] = name;
}

/** The network's directory, read whole under the lock (one host call) and kept in step with our writes. */
export class LeaseStore {
  /** file names, sorted (lock and dotfiles excluded by the host) */
  keys: Array<string> = new Array<string>();
  /** contents by file name; a name missing here could not be read */
  contents: Map<string, string> = new Map<string, string>();
  /** addresses whose file (named exactly as Go prints the address) exists */
  taken: AddrSet = new AddrSet();

  /** Opens (creating and locking) <dataDir>/<network> and lists it. */
  open(network: string, dataDir: string): HostError | null {
    const e = store.open(network, dataDir);
    if (e !== null) return e;
    // The whole directory in one host call: ADD needs every owner anyway
    // (the reference walks all files to refuse a duplicate allocation).
    const all = store.entries();
    if (!all.ok) return all.error;
    this.keys = new Array<string>();
    for (let i = 0; i < all.value.length; i++) {
      this.keys.push(all.value[i].f0);
      this.contents.set(all.value[i].f0, all.value[i].f1);
    }
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i];
      // Files named exactly as Go prints an address block it. A strict dotted
      // quad is that name; an IPv6 name counts by value, however it is written.
      const v4 = parseV4(k);
      if (v4 >= 0) { this.taken.addV4(<u32>v4); continue; }
      if (k.indexOf(":") < 0) continue;
      const ip = goParseIP(k);
      if (ip !== null) this.taken.add(ip);
    }
    return null;
  }

  /** Creates the lease file for ip unless it exists; records it as the range set's last. */
  reserve(id: string, ifname: string, ip: IP, rangeID: string): Result<bool, HostError> {
    if (this.taken.has(ip)) return Result.success<bool, HostError>(false);
    const key = goIPString(ip);
    const content = trimSpace(id) + LINE_BREAK + ifname;
    const e = store.put(key, content);
    if (e !== null) return Result.failure<bool, HostError>(e);
    this.taken.add(ip);
    insertSorted(this.keys, key);
    this.contents.set(key, content);
    const last = LAST_IP_PREFIX + rangeID;
    const e2 = store.put(last, key);
    if (e2 !== null) return Result.failure<bool, HostError>(e2);
    insertSorted(this.keys, last);
    this.contents.set(last, key);
    return Result.success<bool, HostError>(true);
  }

  /** The address in last_reserved_ip.<rangeID>, or null (missing or not an address). */
  lastReservedIP(rangeID: string): IP | null {
    const key = LAST_IP_PREFIX + rangeID;
    if (!this.contents.has(key)) return null;
    return goParseIP(this.contents.get(key)); // net.ParseIP: no trimming
  }

  private matches(key: string, match: string): bool {
    return this.contents.has(key) && trimSpace(this.contents.get(key)) == match;
  }

  /** Whether any file holds exactly `match` (after trimming), as FindByKey. */
  private findByKey(match: string): bool {
    for (let i = 0; i < this.keys.length; i++) if (this.matches(this.keys[i], match)) return true;
    return false;
  }

  /** Removes every file holding `match`; whether one was removed (ReleaseByKey). */
  private releaseByKey(match: string): bool {
    let found = false;
    const kept = new Array<string>();
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i];
      if (this.matches(k, match) && store.remove(k) === null) {
        found = true;
        this.contents.delete(k);
        const ip = goParseIP(k);
        if (ip !== null) this.taken.delete(ip);
        continue;
      }
      kept.push(k);
    }
    this.keys = kept;
    return found;
  }

  /** Whether the attachment holds any address (files from before ifname was stored count). */
  findByID(id: string, ifname: string): bool {
    if (this.findByKey(trimSpace(id) + LINE_BREAK + ifname)) return true;
    return this.findByKey(trimSpace(id));
  }

  /** Releases the attachment's addresses; only if none, files naming just the container. */
  releaseByID(id: string, ifname: string): void {
    if (!this.releaseByKey(trimSpace(id) + LINE_BREAK + ifname)) this.releaseByKey(trimSpace(id));
  }

  /** The addresses held by the attachment, or by the container in the old format. */
  getByID(id: string, ifname: string): Array<IP> {
    const match = trimSpace(id) + LINE_BREAK + ifname;
    const matchOld = trimSpace(id);
    const out = new Array<IP>();
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i];
      if (!this.contents.has(k)) continue;
      const c = trimSpace(this.contents.get(k));
      if (c != match && c != matchOld) continue;
      const ip = goParseIP(k);
      if (ip !== null) out.push(ip);
    }
    return out;
  }

  /**
   * GC: removes every lease file (a file named as an address) whose owner is
   * not among the valid attachments. Old files name only the container: they
   * stay while any valid attachment has that container.
   */
  releaseAllExcept(valid: Array<string>, validIDs: Array<string>): Array<string> {
    const released = new Array<string>();
    const kept = new Array<string>();
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i];
      const ip = goParseIP(k);
      if (ip === null || !this.contents.has(k)) { kept.push(k); continue; }
      const c = trimSpace(this.contents.get(k));
      const live = c.indexOf(LINE_BREAK) >= 0 ? valid.includes(c) : validIDs.includes(c);
      if (!live && store.remove(k) === null) {
        released.push(k);
        this.contents.delete(k);
        this.taken.delete(ip);
        continue;
      }
      kept.push(k);
    }
    this.keys = kept;
    return released;
  }
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
  const held = s.getByID(id, ifname);
  for (let i = 0; i < held.length; i++) {
    if (set.contains(held[i])) {
      return failed(goIPString(held[i]) + " has been allocated to " + id + ", duplicate allocation is not allowed");
    }
  }

  let last = s.lastReservedIP(rangeID);
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
