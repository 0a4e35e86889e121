// The DHCP client of cni-wasm's DHCP daemon (host/dhcp/daemon.ts), as a
// sandboxed component: DHCPv4 messages built and parsed here, the
// DORA / renew / rebind / release state machine, options (subnet mask,
// router, classless static routes 121, static routes 33, lease times 51/58/59,
// the server identifier), the reference's client identifier and the
// config's request / provide lists. Its only I/O is dhcp-wire: UDP on port
// 68 of the lease's interface (the daemon binds it in the container's
// namespace) and the clock.
//
// The daemon calls `add` with a request document (config):
//   {op: "acquire" | "maintain" | "release", clientId, provide: [{code, value}],
//    request: [codes], timeoutMs, resendMaxMs, budgetMs, lease: {...}}
// and keeps what it answers: {event, lease: {...}, nextAt} (nextAt: when to
// call "maintain" again, ms since the epoch; 0 for never).
//
// Replies come back to a socket without an address yet, so DISCOVER and the
// selecting REQUEST set the BOOTP broadcast flag (servers then broadcast
// their answers); renewals are unicast once the address is configured.
import {
  CniError, CniPlugin, Datagram, ERR_INVALID_CONFIG, ERR_TRY_AGAIN, JSONValue, Request, Result,
  cniError, dhcpWire, parseJSON, registerPlugin,
} from "../../sdk";

const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const RELEASE: u8 = 7;

const OPT_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_STATIC_ROUTES: u8 = 33;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MSG_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_MAX_SIZE: u8 = 57;
const OPT_T1: u8 = 58;
const OPT_T2: u8 = 59;
const OPT_CLIENT_ID: u8 = 61;
const OPT_CLASSLESS_ROUTES: u8 = 121;

const DEFAULT_LEASE_S: f64 = 3600;
const FAST_DELAY_MS: i64 = 2000;
const FAST_TRIES: i32 = 4;
const BASE_DELAY_MS: i64 = 4000;

// host results (the gate returns every host call as a result)
function wireNow(): i64 {
  const r = dhcpWire.nowMs();
  return r.ok ? <i64>r.value : 0;
}
function wireRandom(): u32 {
  const r = dhcpWire.random();
  return r.ok ? r.value : 0x5a5a5a5a;
}

// ---- addresses ------------------------------------------------------------

function ipString(a: Array<u8>, at: i32): string {
  return a[at].toString() + "." + a[at + 1].toString() + "." + a[at + 2].toString() + "." + a[at + 3].toString();
}

/** "a.b.c.d" -> 4 bytes, or null */
function ipBytes(s: string): Array<u8> | null {
  const parts = s.split(".");
  if (parts.length != 4) return null;
  const out = new Array<u8>(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (p.length == 0 || p.length > 3) return null;
    let v: i32 = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j);
      if (c < 48 || c > 57) return null;
      v = v * 10 + (c - 48);
    }
    if (v > 255) return null;
    out[i] = <u8>v;
  }
  return out;
}

function prefixOf(mask: Array<u8>): i32 {
  let n = 0;
  for (let i = 0; i < 4; i++) {
    let b = mask[i];
    while (b & 0x80) { n++; b = <u8>(b << 1); }
    if (b != 0) return -1;
    if (mask[i] != 0xff) {
      for (let j = i + 1; j < 4; j++) if (mask[j] != 0) return -1;
      break;
    }
  }
  return n;
}

function utf8(s: string): Array<u8> {
  const buf = Uint8Array.wrap(String.UTF8.encode(s));
  const out = new Array<u8>(buf.length);
  for (let i = 0; i < buf.length; i++) out[i] = buf[i];
  return out;
}

// ---- messages -------------------------------------------------------------

class Opt {
  constructor(public code: u8, public data: Array<u8>) {}
}

/** Options in order, one per code: setting a code again replaces it (dhcpv4 Options.Update). */
class Opts {
  list: Array<Opt> = new Array<Opt>();
  set(code: u8, data: Array<u8>): void {
    for (let i = 0; i < this.list.length; i++) {
      if (this.list[i].code == code) { this.list[i].data = data; return; }
    }
    this.list.push(new Opt(code, data));
  }
}

class Msg {
  op: u8 = 0;
  xid: u32 = 0;
  yiaddr: Array<u8> = [0, 0, 0, 0];
  chaddr: Array<u8> = new Array<u8>(6);
  /** options by code (repeated ones concatenated, RFC 3396) */
  codes: Array<u8> = new Array<u8>();
  values: Array<Array<u8>> = new Array<Array<u8>>();
  type: u8 = 0;

  get(code: u8): Array<u8> | null {
    for (let i = 0; i < this.codes.length; i++) if (this.codes[i] == code) return this.values[i];
    return null;
  }
  put(code: u8, data: Array<u8>): void {
    for (let i = 0; i < this.codes.length; i++) {
      if (this.codes[i] == code) { this.values[i] = this.values[i].concat(data); return; }
    }
    this.codes.push(code);
    this.values.push(data);
  }
}

function build(type: u8, xid: u32, ciaddr: Array<u8> | null, broadcast: bool, chaddr: Array<u8>, opts: Opts): Array<u8> {
  const p = new Array<u8>(240);
  for (let i = 0; i < 240; i++) p[i] = 0;
  p[0] = 1; p[1] = 1; p[2] = 6;
  p[4] = <u8>(xid >> 24); p[5] = <u8>(xid >> 16); p[6] = <u8>(xid >> 8); p[7] = <u8>xid;
  if (broadcast) p[10] = 0x80;
  if (ciaddr !== null) for (let i = 0; i < 4; i++) p[12 + i] = ciaddr[i];
  for (let i = 0; i < 6 && i < chaddr.length; i++) p[28 + i] = chaddr[i];
  p[236] = 99; p[237] = 130; p[238] = 83; p[239] = 99;
  p.push(OPT_MSG_TYPE); p.push(1); p.push(type);
  for (let i = 0; i < opts.list.length; i++) {
    const o = opts.list[i];
    if (o.code == OPT_MSG_TYPE || o.code == 0 || o.code == 255) continue;
    // an option longer than 255 bytes goes in several (RFC 3396)
    let at = 0;
    do {
      const n = min(255, o.data.length - at);
      p.push(o.code); p.push(<u8>n);
      for (let j = 0; j < n; j++) p.push(o.data[at + j]);
      at += n;
    } while (at < o.data.length);
  }
  p.push(255);
  while (p.length < 300) p.push(0); // the BOOTP minimum some servers insist on
  return p;
}

function parse(d: Array<u8>): Msg | null {
  if (d.length < 241) return null;
  if (d[236] != 99 || d[237] != 130 || d[238] != 83 || d[239] != 99) return null;
  const m = new Msg();
  m.op = d[0];
  m.xid = (<u32>d[4] << 24) | (<u32>d[5] << 16) | (<u32>d[6] << 8) | <u32>d[7];
  for (let i = 0; i < 4; i++) m.yiaddr[i] = d[16 + i];
  for (let i = 0; i < 6; i++) m.chaddr[i] = d[28 + i];
  let i = 240;
  while (i < d.length) {
    const code = d[i];
    if (code == 255) break;
    if (code == 0) { i++; continue; }
    if (i + 1 >= d.length) return null;
    const n = <i32>d[i + 1];
    if (i + 2 + n > d.length) return null;
    m.put(code, d.slice(i + 2, i + 2 + n));
    i += 2 + n;
  }
  const t = m.get(OPT_MSG_TYPE);
  if (t === null || t.length != 1) return null;
  m.type = t[0];
  return m;
}

function u32At(a: Array<u8>): f64 {
  return <f64>((<u32>a[0] << 24) | (<u32>a[1] << 16) | (<u32>a[2] << 8) | <u32>a[3]);
}

// ---- the request document -------------------------------------------------

class Job {
  op: string = "";
  clientId: string = "";
  opts: Opts = new Opts();
  timeoutMs: i64 = 10000;
  resendMaxMs: i64 = 62000;
  deadline: i64 = 0;
  lease: JSONValue = JSONValue.newObject();
  chaddr: Array<u8> = new Array<u8>(6);
}

function loadJob(req: Request): Result<Job, CniError> {
  const v = parseJSON(req.config);
  if (v === null || !v.isObject()) return Result.failure<Job, CniError>(cniError(ERR_INVALID_CONFIG, "the DHCP client's request is not a JSON object"));
  const j = new Job();
  j.op = v.getString("op");
  j.clientId = v.getString("clientId");
  j.timeoutMs = <i64>v.getNumber("timeoutMs", 10000);
  j.resendMaxMs = <i64>v.getNumber("resendMaxMs", 62000);
  j.deadline = <i64>wireNow() + <i64>v.getNumber("budgetMs", 10000);
  const l = v.getObject("lease");
  if (l !== null) j.lease = l;
  // the reference's client id option: type 0, then containerID/network/ifname
  const cid = utf8(j.clientId);
  cid.unshift(0);
  j.opts.set(OPT_CLIENT_ID, cid);
  j.opts.set(OPT_MAX_SIZE, [0x05, 0xdc]);
  const provide = v.getArray("provide");
  if (provide !== null) {
    for (let i = 0; i < provide.length; i++) {
      const code = <i32>provide[i].getNumber("code", 0);
      if (code <= 0 || code >= 255 || code == <i32>OPT_MSG_TYPE) continue;
      j.opts.set(<u8>code, utf8(provide[i].getString("value")));
    }
  }
  const request = v.getArray("request");
  if (request !== null && request.length > 0) {
    const prl = new Array<u8>();
    for (let i = 0; i < request.length; i++) {
      const c = <i32>request[i].asNumber();
      if (c > 0 && c < 255 && !prl.includes(<u8>c)) prl.push(<u8>c);
    }
    j.opts.set(OPT_PARAMS, prl);
  }
  const hw = dhcpWire.hwaddr();
  if (!hw.ok) return Result.failure<Job, CniError>(cniError(ERR_TRY_AGAIN, "cannot read the interface's hardware address: " + hw.error!.message, hw.error!.code));
  j.chaddr = hw.value;
  return Result.success<Job, CniError>(j);
}

// ---- one exchange: send, wait for the matching answer, resend with backoff --

class Outcome {
  msg: Msg | null = null;
  error: string = "";
}

function now(): i64 { return <i64>wireNow(); }

/** Sends `packet` (to `to`, "" broadcast) and waits for an answer of one of the
 *  `want` types with its xid and our chaddr; resends as the reference's
 *  backoff does (4 fast tries 2 s apart, then 4 s doubling up to resendMax),
 *  until the job's deadline. `once`: no resend (renewal steps). */
function exchange(j: Job, packet: Array<u8>, xid: u32, to: string, want: Array<u8>, once: bool): Outcome {
  const out = new Outcome();
  let tries = 0;
  let delay = BASE_DELAY_MS;
  while (true) {
    const se = dhcpWire.send(packet, to);
    if (se !== null) { out.error = "sending: " + se.message; return out; }
    tries++;
    let wait: i64 = tries <= FAST_TRIES ? FAST_DELAY_MS : delay;
    if (once || wait > j.timeoutMs) wait = j.timeoutMs;
    const until = min(now() + wait, j.deadline);
    while (now() < until) {
      const r = dhcpWire.recv(<u32>max<i64>(1, until - now()));
      if (!r.ok) { out.error = "receiving: " + r.error!.message; return out; }
      const d: Datagram | null = r.value;
      if (d === null) break;
      const m = parse(d.data);
      if (m === null || m.op != 2 || m.xid != xid) continue;
      let same = true;
      for (let i = 0; i < 6; i++) if (m.chaddr[i] != j.chaddr[i]) same = false;
      if (!same || !want.includes(m.type)) continue;
      out.msg = m;
      return out;
    }
    if (once || now() >= j.deadline) { out.error = "no answer from a DHCP server in time"; return out; }
    if (tries > FAST_TRIES && delay < j.resendMaxMs) delay = min(delay * 2, j.resendMaxMs);
  }
  return out;
}

// ---- leases -----------------------------------------------------------------

/** "a.b.c.d/w" with the host bits cleared (the kernel refuses a route to 10.200.0.0/8) */
function network(b: Array<u8>, at: i32, w: i32): string {
  const d: Array<u8> = [0, 0, 0, 0];
  for (let k = 0; k < 4; k++) {
    const bits = min(8, max(0, w - k * 8));
    d[k] = <u8>(<i32>b[at + k] & (0xff << (8 - bits)));
  }
  return ipString(d, 0) + "/" + w.toString();
}

function routesOf(ack: Msg, router: string): JSONValue {
  const a = JSONValue.newArray();
  const cl = ack.get(OPT_CLASSLESS_ROUTES);
  if (cl !== null && cl.length > 0) {
    // RFC 3442: width, the significant octets of the destination, the router
    let i = 0;
    while (i < cl.length) {
      const w = <i32>cl[i];
      const n = (w + 7) >> 3;
      if (w > 32 || i + 1 + n + 4 > cl.length) break;
      const dst: Array<u8> = [0, 0, 0, 0];
      for (let k = 0; k < n; k++) dst[k] = cl[i + 1 + k];
      const gw = ipString(cl, i + 1 + n);
      const r = JSONValue.newObject().set("dst", JSONValue.fromString(network(dst, 0, w)));
      const onLink = gw == "0.0.0.0";
      r.set("gw", JSONValue.fromString(onLink ? "" : gw)).set("onLink", JSONValue.fromBool(onLink));
      a.push(r);
      i += 1 + n + 4;
    }
    // with option 121, the router option and option 33 are not used (RFC 3442)
    return a;
  }
  const st = ack.get(OPT_STATIC_ROUTES);
  if (st !== null) {
    for (let i = 0; i + 8 <= st.length; i += 8) {
      const first = st[i];
      // classful, as the reference (which prints the destination unmasked: 10.200.0.0/8)
      const bits = first < 128 ? 8 : first < 192 ? 16 : 24;
      a.push(JSONValue.newObject()
        .set("dst", JSONValue.fromString(network(st, i, bits)))
        .set("gw", JSONValue.fromString(ipString(st, i + 4))).set("onLink", JSONValue.fromBool(false)));
    }
  }
  if (router.length > 0) {
    a.push(JSONValue.newObject().set("dst", JSONValue.fromString("0.0.0.0/0"))
      .set("gw", JSONValue.fromString(router)).set("onLink", JSONValue.fromBool(false)));
  }
  return a;
}

/** The lease an ACK gives, with its renewal, rebinding and expiry times. */
function commit(ack: Msg, serverId: string): Result<JSONValue, CniError> {
  const mask = ack.get(OPT_MASK);
  if (mask === null || mask.length != 4 || prefixOf(mask) < 0) {
    return Result.failure<JSONValue, CniError>(cniError(ERR_TRY_AGAIN, "DHCP option Subnet Mask not found in DHCPACK", "EPROTO"));
  }
  const ip = ipString(ack.yiaddr, 0);
  const r = ack.get(OPT_ROUTER);
  const router = r !== null && r.length >= 4 ? ipString(r, 0) : "";
  const lt = ack.get(OPT_LEASE_TIME);
  const leaseS = lt !== null && lt.length == 4 ? u32At(lt) : DEFAULT_LEASE_S;
  const t1 = ack.get(OPT_T1);
  const t2 = ack.get(OPT_T2);
  const renewS = t1 !== null && t1.length == 4 ? u32At(t1) : leaseS / 2;
  const rebindS = t2 !== null && t2.length == 4 ? u32At(t2) : leaseS * 85 / 100;
  const sid = ack.get(OPT_SERVER_ID);
  const server = sid !== null && sid.length == 4 ? ipString(sid, 0) : serverId;
  const t = <f64>now();
  const l = JSONValue.newObject()
    .set("address", JSONValue.fromString(ip + "/" + prefixOf(mask).toString()))
    .set("ip", JSONValue.fromString(ip))
    .set("router", JSONValue.fromString(router))
    .set("routes", routesOf(ack, router))
    .set("serverId", JSONValue.fromString(server))
    .set("leaseSeconds", JSONValue.fromNumber(leaseS))
    .set("boundAt", JSONValue.fromNumber(t))
    .set("renewAt", JSONValue.fromNumber(Math.floor(t + renewS * 1000)))
    .set("rebindAt", JSONValue.fromNumber(Math.floor(t + rebindS * 1000)))
    .set("expiresAt", JSONValue.fromNumber(Math.floor(t + leaseS * 1000)));
  return Result.success<JSONValue, CniError>(l);
}

function answer(event: string, lease: JSONValue, nextAt: f64): Result<string, CniError> {
  return Result.success<string, CniError>(JSONValue.newObject()
    .set("event", JSONValue.fromString(event)).set("lease", lease).set("nextAt", JSONValue.fromNumber(nextAt)).stringify());
}

function fail(msg: string, code: string): Result<string, CniError> {
  return Result.failure<string, CniError>(cniError(ERR_TRY_AGAIN, msg, code));
}

/** INIT -> SELECTING -> REQUESTING -> BOUND, again from the start on a NAK. */
function acquire(j: Job): Result<string, CniError> {
  while (true) {
    const xid = wireRandom();
    const d = new Opts();
    for (let i = 0; i < j.opts.list.length; i++) d.set(j.opts.list[i].code, j.opts.list[i].data);
    const offer = exchange(j, build(DISCOVER, xid, null, true, j.chaddr, d), xid, "", [OFFER], false);
    if (offer.msg === null) return fail("no DHCPOFFER: " + offer.error, "ETIMEDOUT");
    const sid = offer.msg!.get(OPT_SERVER_ID);
    if (sid === null || sid.length != 4) continue;
    const r = new Opts();
    for (let i = 0; i < j.opts.list.length; i++) r.set(j.opts.list[i].code, j.opts.list[i].data);
    r.set(OPT_REQUESTED_IP, offer.msg!.yiaddr);
    r.set(OPT_SERVER_ID, sid);
    const ack = exchange(j, build(REQUEST, xid, null, true, j.chaddr, r), xid, "", [ACK, NAK], false);
    if (ack.msg === null) return fail("no DHCPACK: " + ack.error, "ETIMEDOUT");
    if (ack.msg!.type == NAK) {
      if (now() >= j.deadline) return fail("the DHCP server refused the offered address (DHCPNAK)", "ENAK");
      continue;
    }
    const l = commit(ack.msg!, ipString(sid, 0));
    if (!l.ok) return Result.failure<string, CniError>(l.error!);
    return answer("acquired", l.value, l.value.getNumber("renewAt"));
  }
  return fail("unreachable", "EIO");
}

/** RENEWING (unicast to the server) or REBINDING (broadcast): one REQUEST with ciaddr. */
function extend(j: Job, rebinding: bool): Result<string, CniError> {
  const ip = ipBytes(j.lease.getString("ip"));
  if (ip === null) return fail("the lease to renew has no address", "EINVAL");
  const xid = wireRandom();
  const to = rebinding ? "" : j.lease.getString("serverId");
  const ack = exchange(j, build(REQUEST, xid, ip, false, j.chaddr, j.opts), xid, to, [ACK, NAK], true);
  const t = <f64>now();
  if (ack.msg !== null && ack.msg!.type == ACK) {
    const l = commit(ack.msg!, j.lease.getString("serverId"));
    if (l.ok) return answer(rebinding ? "rebound" : "renewed", l.value, l.value.getNumber("renewAt"));
  }
  const why = ack.msg !== null ? "DHCPNAK" : ack.error;
  // RFC 2131 4.4.5: try again after half the time left (at least 10 s), up to T2 / expiry
  const limit = rebinding ? j.lease.getNumber("expiresAt") : j.lease.getNumber("rebindAt");
  const next = min(limit, t + max(10000, (limit - t) / 2));
  return answer((rebinding ? "rebinding failed (" : "renewal failed (") + why + ")", j.lease, next);
}

function maintain(j: Job): Result<string, CniError> {
  const t = <f64>now();
  if (!j.lease.has("ip")) return fail("no lease to maintain", "EINVAL");
  if (t >= j.lease.getNumber("expiresAt")) return answer("expired", j.lease, 0);
  if (t < j.lease.getNumber("renewAt")) return answer("", j.lease, j.lease.getNumber("renewAt"));
  return extend(j, t >= j.lease.getNumber("rebindAt"));
}

function release(j: Job): Result<string, CniError> {
  const ip = ipBytes(j.lease.getString("ip"));
  const server = j.lease.getString("serverId");
  if (ip === null || ipBytes(server) === null) return fail("the lease to release has no address or server", "EINVAL");
  const r = new Opts();
  for (let i = 0; i < j.opts.list.length; i++) if (j.opts.list[i].code == OPT_CLIENT_ID) r.set(OPT_CLIENT_ID, j.opts.list[i].data);
  r.set(OPT_SERVER_ID, ipBytes(server)!);
  const msg = build(RELEASE, wireRandom(), ip, false, j.chaddr, r);
  let e = dhcpWire.send(msg, server);
  // no route to the server (the address is no longer on the interface): broadcast it
  if (e !== null) e = dhcpWire.send(msg, "");
  if (e !== null) return fail("failed to send DHCPRELEASE: " + e.message, e.code);
  return answer("released", j.lease, 0);
}

class DhcpClient extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const jr = loadJob(req);
    if (!jr.ok) return Result.failure<string, CniError>(jr.error!);
    const j = jr.value;
    if (j.op == "acquire") return acquire(j);
    if (j.op == "maintain") return maintain(j);
    if (j.op == "release") return release(j);
    return Result.failure<string, CniError>(cniError(ERR_INVALID_CONFIG, "unknown DHCP client operation '" + j.op + "'"));
  }
}

registerPlugin(new DhcpClient());
