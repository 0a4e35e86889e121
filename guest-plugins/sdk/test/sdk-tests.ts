// Checks for the guest SDK (json.ts, ip.ts), driven by test/unit/guest-sdk.test.ts.
// Every exported `check*` function returns the number of failed assertions
// (0 = pass) and reports each failure through the host's `report`.
// Build: asc ... --runtime stub --use abort=guest-plugins/sdk/test/sdk-tests/testAbort

import { JSONValue, JSONKind, parseJSON, lastJSONError, formatNumber } from "../json";
import { IP, IPNet, parseIP, parseCIDR } from "../ip";

/** Host hook: a UTF-16 message at ptr, len in bytes. */
@external("env", "report")
declare function report(ptr: usize, len: i32): void;

function say(msg: string): void {
  report(changetype<usize>(msg), msg.length << 1);
}

/** abort() replacement: tell the host why, then trap. */
export function testAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  say("abort: " + (message ? message : "(no message)") + " at " +
    (fileName ? fileName : "?") + ":" + line.toString() + ":" + column.toString());
  unreachable();
}

let failures = 0;

function fail(msg: string): void {
  failures++;
  say(msg);
}
function ok(what: string, cond: bool): void {
  if (!cond) fail(what + ": expected true");
}
function eq(what: string, got: string, want: string): void {
  if (got != want) fail(what + ": got " + quote(got) + ", want " + quote(want));
}
function eqI(what: string, got: i64, want: i64): void {
  if (got != want) fail(what + ": got " + got.toString() + ", want " + want.toString());
}
function eqF(what: string, got: f64, want: f64): void {
  if (got != want) fail(what + ": got " + got.toString() + ", want " + want.toString());
}
function quote(s: string): string { return JSONValue.fromString(s).stringify(); }

function parseOk(what: string, text: string): JSONValue {
  const v = parseJSON(text);
  if (v == null) {
    fail(what + ": parse failed: " + lastJSONError());
    return JSONValue.nul();
  }
  return v;
}
/** Parse `text`, stringify, expect `want` (defaults to text itself). */
function roundTrip(what: string, text: string, want: string = ""): void {
  const v = parseJSON(text);
  if (v == null) { fail(what + ": parse failed: " + lastJSONError()); return; }
  eq(what, v.stringify(), want.length ? want : text);
}
function parseErr(text: string, want: string): void {
  const v = parseJSON(text);
  if (v != null) { fail("parse " + quote(text) + ": expected error " + quote(want) + ", got " + v.stringify()); return; }
  eq("error for " + quote(text), lastJSONError(), want);
}

// ---------------------------------------------------------------- JSON

const BRIDGE_COMPACT =
  '{"cniVersion":"1.0.0","name":"mynet","plugins":[{"type":"bridge","bridge":"cni0",' +
  '"isGateway":true,"ipMasq":true,"mtu":1500,"hairpinMode":false,"ipam":{"type":"host-local",' +
  '"ranges":[[{"subnet":"10.22.0.0/16","rangeStart":"10.22.0.10","rangeEnd":"10.22.255.254",' +
  '"gateway":"10.22.0.1"}],[{"subnet":"fd00:1234::/64"}]],"routes":[{"dst":"0.0.0.0/0"},' +
  '{"dst":"::/0"}],"dataDir":"/var/lib/cni/networks"}},{"type":"portmap",' +
  '"capabilities":{"portMappings":true},"snat":true}]}';

const BRIDGE_PRETTY =
  '{\n' +
  '  "cniVersion": "1.0.0",\n' +
  '  "name": "mynet",\n' +
  '  "plugins": [\n' +
  '    {\n' +
  '      "type": "bridge",\n' +
  '      "bridge": "cni0",\n' +
  '      "isGateway": true,\n' +
  '      "ipMasq": true,\n' +
  '      "mtu": 1500,\n' +
  '      "hairpinMode": false,\n' +
  '      "ipam": {\n' +
  '        "type": "host-local",\n' +
  '        "ranges": [\n' +
  '          [ { "subnet": "10.22.0.0/16", "rangeStart": "10.22.0.10",\r\n' +
  '              "rangeEnd": "10.22.255.254", "gateway": "10.22.0.1" } ],\n' +
  '          [ { "subnet": "fd00:1234::/64" } ]\n' +
  '        ],\n' +
  '        "routes": [ { "dst": "0.0.0.0/0" }, { "dst": "::/0" } ],\n' +
  '\t\t"dataDir": "/var/lib/cni/networks"\n' +
  '      }\n' +
  '    },\n' +
  '    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }\n' +
  '  ]\n' +
  '}\n';

const RESULT_COMPACT =
  '{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"00:11:22:33:44:55"},' +
  '{"name":"veth1234abcd","mac":"aa:bb:cc:dd:ee:ff"},{"name":"eth0","mac":"ee:ee:ee:ee:ee:ee",' +
  '"sandbox":"/var/run/netns/test"}],"ips":[{"address":"10.22.0.5/16","gateway":"10.22.0.1",' +
  '"interface":2},{"address":"fd00:1234::5/64","gateway":"fd00:1234::1","interface":2}],' +
  '"routes":[{"dst":"0.0.0.0/0","gw":"10.22.0.1"},{"dst":"::/0"}],"dns":{"nameservers":' +
  '["10.96.0.10"],"domain":"cluster.local","search":["default.svc.cluster.local",' +
  '"svc.cluster.local"],"options":["ndots:5"]}}';

export function checkJsonBridgeConf(): i32 {
  failures = 0;
  roundTrip("pretty bridge conflist", BRIDGE_PRETTY, BRIDGE_COMPACT);
  roundTrip("compact bridge conflist", BRIDGE_COMPACT);
  ok("lastJSONError cleared after success", lastJSONError() == "");

  const conf = parseOk("bridge", BRIDGE_COMPACT);
  eq("cniVersion", conf.getString("cniVersion"), "1.0.0");
  eq("keys", conf.keys().join(","), "cniVersion,name,plugins");
  const plugins = conf.getArray("plugins");
  if (plugins == null) { fail("plugins missing"); return failures; }
  eqI("plugins length", plugins.length, 2);
  const bridge = plugins[0];
  eq("type", bridge.getString("type"), "bridge");
  eqF("mtu", bridge.getNumber("mtu", -1), 1500);
  ok("isGateway", bridge.getBool("isGateway", false));
  ok("hairpinMode", !bridge.getBool("hairpinMode", true));
  ok("missing bool default", bridge.getBool("promiscMode", true));
  eq("missing string default", bridge.getString("vlan", "none"), "none");
  eq("non-string default", bridge.getString("mtu", "x"), "x");
  eqF("non-number default", bridge.getNumber("bridge", 7), 7);
  ok("getObject on scalar", bridge.getObject("mtu") == null);
  ok("getArray on object", bridge.getArray("ipam") == null);
  ok("get missing", bridge.get("nope") == null);

  const ipam = bridge.getObject("ipam");
  if (ipam == null) { fail("ipam missing"); return failures; }
  const ranges = ipam.getArray("ranges");
  if (ranges == null) { fail("ranges missing"); return failures; }
  eqI("range sets", ranges.length, 2);
  const r0 = ranges[0].asArray()[0];
  eq("subnet", r0.getString("subnet"), "10.22.0.0/16");
  eq("rangeEnd", r0.getString("rangeEnd"), "10.22.255.254");
  eq("v6 subnet", ranges[1].asArray()[0].getString("subnet"), "fd00:1234::/64");
  eq("portmap cap", plugins[1].getObject("capabilities")!.stringify(), '{"portMappings":true}');

  // Mutation keeps insertion order; replacement stays in place.
  const copy = bridge.clone();
  copy.set("mtu", JSONValue.fromNumber(9000)).set("vlan", JSONValue.fromNumber(100));
  ok("remove present", copy.remove("ipMasq"));
  ok("remove absent", !copy.remove("ipMasq"));
  eq("keys after edit", copy.keys().join(","), "type,bridge,isGateway,mtu,hairpinMode,ipam,vlan");
  eqF("clone edited", copy.getNumber("mtu"), 9000);
  eqF("original untouched", bridge.getNumber("mtu"), 1500);
  copy.getObject("ipam")!.set("type", JSONValue.fromString("static"));
  eq("deep clone", ipam.getString("type"), "host-local");
  ok("has", copy.has("vlan") && !copy.has("ipMasq"));
  eq("re-serialize original", conf.stringify(), BRIDGE_COMPACT);
  return failures;
}

export function checkJsonResult(): i32 {
  failures = 0;
  roundTrip("result round trip", RESULT_COMPACT);
  const res = parseOk("result", RESULT_COMPACT);
  const ips = res.getArray("ips")!;
  eqF("ips[0].interface", ips[0].getNumber("interface", -1), 2);
  eq("ips[1].address", ips[1].getString("address"), "fd00:1234::5/64");
  eq("dns.search", res.getObject("dns")!.get("search")!.stringify(),
    '["default.svc.cluster.local","svc.cluster.local"]');

  // Build the same document with the DOM API.
  const ifaces = JSONValue.newArray()
    .push(JSONValue.newObject().set("name", JSONValue.fromString("cni0"))
      .set("mac", JSONValue.fromString("00:11:22:33:44:55")))
    .push(JSONValue.newObject().set("name", JSONValue.fromString("veth1234abcd"))
      .set("mac", JSONValue.fromString("aa:bb:cc:dd:ee:ff")))
    .push(JSONValue.newObject().set("name", JSONValue.fromString("eth0"))
      .set("mac", JSONValue.fromString("ee:ee:ee:ee:ee:ee"))
      .set("sandbox", JSONValue.fromString("/var/run/netns/test")));
  const ipList = JSONValue.newArray()
    .push(JSONValue.newObject().set("address", JSONValue.fromString("10.22.0.5/16"))
      .set("gateway", JSONValue.fromString("10.22.0.1")).set("interface", JSONValue.fromNumber(2)))
    .push(JSONValue.newObject().set("address", JSONValue.fromString("fd00:1234::5/64"))
      .set("gateway", JSONValue.fromString("fd00:1234::1")).set("interface", JSONValue.fromNumber(2)));
  const routes = JSONValue.newArray()
    .push(JSONValue.newObject().set("dst", JSONValue.fromString("0.0.0.0/0"))
      .set("gw", JSONValue.fromString("10.22.0.1")))
    .push(JSONValue.newObject().set("dst", JSONValue.fromString("::/0")));
  const dns = JSONValue.newObject()
    .set("nameservers", JSONValue.newArray().push(JSONValue.fromString("10.96.0.10")))
    .set("domain", JSONValue.fromString("cluster.local"))
    .set("search", JSONValue.newArray().push(JSONValue.fromString("default.svc.cluster.local"))
      .push(JSONValue.fromString("svc.cluster.local")))
    .set("options", JSONValue.newArray().push(JSONValue.fromString("ndots:5")));
  const built = JSONValue.newObject()
    .set("cniVersion", JSONValue.fromString("1.0.0"))
    .set("interfaces", ifaces).set("ips", ipList).set("routes", routes).set("dns", dns);
  eq("built result", built.stringify(), RESULT_COMPACT);

  // Scalars, empties, kinds.
  roundTrip("empties", ' { "a" : [ ] , "b" : { } , "c" : [ [ ] , { } ] } ', '{"a":[],"b":{},"c":[[],{}]}');
  roundTrip("literals", '[true,false,null]');
  roundTrip("top-level string", '"x"');
  roundTrip("top-level number", ' 42 ', '42');
  roundTrip("duplicate key keeps first position, last value", '{"a":1,"b":2,"a":3}', '{"a":3,"b":2}');
  const lit = parseOk("kinds", '[null,true,1,"s",[],{}]').asArray();
  ok("kinds", lit[0].isNull() && lit[1].isBool() && lit[2].isNumber() && lit[3].isString() &&
    lit[4].isArray() && lit[5].isObject());
  ok("kind enum", lit[5].kind == JSONKind.Object && lit[0].kind == JSONKind.Null);
  ok("asX mismatch", lit[3].asNumber() == 0 && lit[2].asString() == "" && !lit[3].asBool() &&
    lit[0].asArray().length == 0);
  eqI("length", parseOk("len", '{"a":1,"b":2}').length, 2);
  eq("built scalars", JSONValue.newArray().push(JSONValue.nul()).push(JSONValue.fromBool(false))
    .push(JSONValue.fromString("")).stringify(), '[null,false,""]');
  ok("set on non-object is no-op", JSONValue.fromNumber(1).set("a", JSONValue.nul()).stringify() == "1");
  return failures;
}

export function checkJsonStrings(): i32 {
  failures = 0;
  const s = parseOk("escapes", '"q\\"b\\\\s\\/n\\nr\\rt\\tb\\bf\\f\\u0001\\u001F\\u0041"').asString();
  eq("escape decode", s, 'q"b\\s/n\nr\rt\tb\bf\f\x01\x1FA');
  eq("escape encode", JSONValue.fromString(s).stringify(),
    '"q\\"b\\\\s/n\\nr\\rt\\tb\\bf\\f\\u0001\\u001fA"');
  eq("del and nul", JSONValue.fromString("\x00\x7f").stringify(), '"\\u0000\x7f"');
  eq("escaped key", parseOk("key", '{"a\\"b":1}').stringify(), '{"a\\"b":1}');
  eq("plain fast path", JSONValue.fromString("plain").stringify(), '"plain"');
  eq("escape at end", JSONValue.fromString("end\n").stringify(), '"end\\n"');

  // Unicode: \u escapes, surrogate pairs, raw non-ASCII all survive; output keeps them raw.
  const u = parseOk("unicode", '"h\\u00e9llo \\u4E16\\ud83d\\ude00 ünï 😀"').asString();
  eq("unicode decode", u, "héllo 世😀 ünï 😀");
  eqI("utf-16 length (emoji are pairs)", u.length, 16);
  eq("unicode encode", JSONValue.fromString(u).stringify(), '"héllo 世😀 ünï 😀"');
  eq("lone high surrogate", parseOk("lone hi", '"\\ud800x"').asString(), "\uFFFDx");
  eq("lone low surrogate", parseOk("lone lo", '"\\udc00"').asString(), "\uFFFD");
  eq("high then non-low", parseOk("hi+A", '"\\ud800\\u0041"').asString(), "\uFFFDA");
  roundTrip("non-ASCII key", '{"ключ":"值"}');
  return failures;
}

export function checkJsonErrors(): i32 {
  failures = 0;
  parseErr('', "unexpected end of input at offset 0");
  parseErr('   ', "unexpected end of input at offset 3");
  parseErr('{"a":1,}', "unexpected character '}' at offset 7");
  parseErr('[1 2]', "unexpected character '2' at offset 3");
  parseErr('[1,]', "unexpected character ']' at offset 3");
  parseErr('{"a":tru}', "unexpected character 't' at offset 5");
  parseErr('{"a" 1}', "unexpected character '1' at offset 5");
  parseErr('{a:1}', "unexpected character 'a' at offset 1");
  parseErr('{"a":1', "unexpected end of input at offset 6");
  parseErr('"abc', "unterminated string at offset 4");
  parseErr('"a\\qb"', "invalid escape '\\q' at offset 2");
  parseErr('"\\u12G4"', "invalid \\u escape at offset 1");
  parseErr('"\\u12"', "invalid \\u escape at offset 1");
  parseErr('"a\nb"', "control character U+000A in string at offset 2");
  parseErr('{} x', "unexpected character 'x' after end of document at offset 3");
  parseErr('truex', "unexpected character 'x' after end of document at offset 4");
  parseErr('[1]]', "unexpected character ']' after end of document at offset 3");
  parseErr('{}é', "unexpected character U+00E9 after end of document at offset 2");
  parseErr('NaN', "unexpected character 'N' at offset 0");
  parseErr("'a'", "unexpected character ''' at offset 0");
  parseErr('01', "unexpected character '1' at offset 1");
  parseErr('1.', "unexpected end of input at offset 2");
  parseErr('1.e5', "unexpected character 'e' at offset 2");
  parseErr('-', "unexpected end of input at offset 1");
  parseErr('-a', "unexpected character 'a' at offset 1");
  parseErr('+1', "unexpected character '+' at offset 0");
  parseErr('.5', "unexpected character '.' at offset 0");
  parseErr('1e', "unexpected end of input at offset 2");
  parseErr('1e+', "unexpected end of input at offset 3");
  parseErr('[1e400]', "number out of range at offset 1");
  parseErr('\uFEFF{}', "unexpected character U+FEFF at offset 0");

  // Depth: 64 nested containers are fine, 65 are not.
  let open = "", close = "";
  for (let i = 0; i < 64; i++) { open += i & 1 ? '{"k":' : "["; close = (i & 1 ? "}" : "]") + close; }
  roundTrip("depth 64", open + "1" + close);
  const innermost = open.lastIndexOf("{"); // the container that becomes the 65th
  parseErr("[" + open + "1" + close + "]", "nesting deeper than 64 at offset " + (innermost + 1).toString());
  parseErr('{"a":' + open + "1" + close + "}", "nesting deeper than 64 at offset " + (innermost + 5).toString());
  parseErr("[".repeat(100000), "nesting deeper than 64 at offset 64"); // no stack blow-up

  // A failure must not leave a stale message after a later success.
  parseOk("after error", "{}");
  eq("error cleared", lastJSONError(), "");
  return failures;
}

export function checkJsonNumbers(): i32 {
  failures = 0;
  roundTrip("1500", "1500");
  roundTrip("-1", "-1");
  roundTrip("0.5", "0.5");
  roundTrip("1e3", "1e3", "1000");
  roundTrip("1E+2", "1E+2", "100");
  roundTrip("-0.25e-2", "-0.25e-2", "-0.0025");
  roundTrip("0", "0");
  roundTrip("1.0", "1.0", "1");
  roundTrip("4294967295", "4294967295");
  roundTrip("2^53", "9007199254740992");
  roundTrip("1.5e300", "1.5e300", "1.5e+300");
  roundTrip("tiny", "5e-324");
  roundTrip("array of numbers", "[1500,-1,0.5,1e3,65535]", "[1500,-1,0.5,1000,65535]");
  eqF("1500", parseOk("n", "1500").asNumber(), 1500);
  eqF("-1", parseOk("n", "-1").asNumber(), -1);
  eqF("0.5", parseOk("n", "0.5").asNumber(), 0.5);
  eqF("1e3", parseOk("n", "1e3").asNumber(), 1000);
  eqF("0.1", parseOk("n", "0.1").asNumber(), 0.1);
  eqF("1.7976931348623157e308", parseOk("n", "1.7976931348623157e308").asNumber(), f64.MAX_VALUE);
  eq("1e21", formatNumber(1e21), "1e+21");
  eq("-3", formatNumber(-3), "-3");
  // AS's Grisu2 may pick a longer/further digit string than JS (0.1+0.2 prints
  // "0.30000000000000007"), but it must still round-trip exactly.
  checkNumberRoundTrip("0.1+0.2", 0.1 + 0.2);
  // Deterministic xorshift over raw bit patterns: every finite double must round-trip.
  let state: u64 = 0x9e3779b97f4a7c15;
  for (let i = 0; i < 20000 && failures < 5; i++) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    const x = reinterpret<f64>(state);
    if (isFinite(x)) checkNumberRoundTrip("random bits " + state.toString(), x);
  }
  for (let i: i64 = -1000; i <= 1000; i += 7) checkNumberRoundTrip("integer", <f64>i);
  // Correct rounding at the hard spots (expected values are compiler-parsed literals).
  eqF("large exponent", parseOk("n", "3.9292734840969677e+49").asNumber(), 3.9292734840969677e+49);
  eqF("ulp case", parseOk("n", "5.497590193813714e+46").asNumber(), 5.497590193813714e+46);
  eqF("max", parseOk("n", "1.7976931348623157e308").asNumber(), f64.MAX_VALUE);
  eqF("rounds down to max", parseOk("n", "1.7976931348623158e308").asNumber(), f64.MAX_VALUE);
  parseErr("1.7976931348623159e308", "number out of range at offset 0");
  eqF("min normal", parseOk("n", "2.2250738585072014e-308").asNumber(), 2.2250738585072014e-308);
  eqF("famous hang", parseOk("n", "2.2250738585072011e-308").asNumber(), 2.2250738585072011e-308);
  eqF("min subnormal", parseOk("n", "5e-324").asNumber(), 5e-324);
  eqF("just above half min subnormal", parseOk("n", "2.4703282292062328e-324").asNumber(), 5e-324);
  eqF("just below half min subnormal", parseOk("n", "2.4703282292062327e-324").asNumber(), 0);
  eqF("underflow", parseOk("n", "1e-400").asNumber(), 0);
  eqF("2^53+1 ties to even", parseOk("n", "9007199254740993").asNumber(), 9007199254740992);
  eqF("2^53+3 ties to even", parseOk("n", "9007199254740995").asNumber(), 9007199254740996);
  eqF("exact tie", parseOk("n", "1.00000000000000011102230246251565404236316680908203125").asNumber(), 1);
  eqF("just above tie", parseOk("n", "1.00000000000000011102230246251565404236316680908203126").asNumber(), 1.0000000000000002);
  eqF("above tie past 800 digits", parseOk("n",
    "1.00000000000000011102230246251565404236316680908203125" + "0".repeat(900) + "1").asNumber(), 1.0000000000000002);
  eqF("sticky tail after 800 zeros", parseOk("n", "1." + "0".repeat(850) + "1").asNumber(), 1);
  eqF("sticky tail in integer part", parseOk("n", "1" + "0".repeat(850) + "1e-851").asNumber(), 1);
  eqF("sticky just above tie", parseOk("n", "9007199254740993." + "0".repeat(900) + "1").asNumber(), 9007199254740994);
  eqF("exact 0.1 expansion", parseOk("n", "0.1000000000000000055511151231257827021181583404541015625").asNumber(), 0.1);
  eqF("1 with 1000 zeros", parseOk("n", "1" + "0".repeat(1000) + "e-1000").asNumber(), 1);
  eqF("leading zeros in fraction", parseOk("n", "0." + "0".repeat(400) + "1e401").asNumber(), 1);
  eqF("huge exponent digits", parseOk("n", "0e999999999999").asNumber(), 0);
  eqF("-0.0", parseOk("n", "-0.0").asNumber(), 0);
  eq("NaN", JSONValue.fromNumber(NaN).stringify(), "null");
  eq("Infinity", JSONValue.fromNumber(Infinity).stringify(), "null");
  return failures;
}

function checkNumberRoundTrip(what: string, x: f64): void {
  const text = JSONValue.fromNumber(x).stringify();
  const v = parseJSON(text);
  if (v == null) { fail(what + ": " + text + " does not parse: " + lastJSONError()); return; }
  const y = v.asNumber();
  // Compare bits so -0 vs 0 is ignored only where JSON loses it (see formatNumber).
  if (y != x) fail(what + ": " + text + " parsed back as " + y.toString());
}

// Host-driven differential test against JS Number(): the host writes UTF-16
// text into `scratch` and compares parseScratch's result bit for bit.
const scratch = new StaticArray<u16>(4096);
export function scratchPtr(): usize { return changetype<usize>(scratch); }
export function parseScratch(units: i32): f64 {
  const v = parseJSON(String.UTF16.decodeUnsafe(changetype<usize>(scratch), <usize>units << 1));
  return v == null || !v.isNumber() ? NaN : v.asNumber();
}

/** Not a check: the host calls it to prove testAbort reports before trapping. */
export function triggerAbort(): void {
  assert(false, "deliberate abort");
}

// ---------------------------------------------------------------- IP

function ipStr(s: string): string {
  const ip = parseIP(s);
  return ip == null ? "<invalid>" : ip.toString();
}
function ipOf(s: string): IP {
  const ip = parseIP(s);
  if (ip == null) { fail("parseIP(" + quote(s) + ") failed"); return new IP(4); }
  return ip;
}
function netOf(s: string): IPNet {
  const n = parseCIDR(s);
  if (n == null) { fail("parseCIDR(" + quote(s) + ") failed"); return new IPNet(new IP(4), 0); }
  return n;
}
function fmt(s: string, want: string): void { eq("format " + s, ipStr(s), want); }
function bad(s: string): void { eq("reject " + quote(s), ipStr(s), "<invalid>"); }
function badNet(s: string): void {
  const n = parseCIDR(s);
  if (n != null) fail("parseCIDR(" + quote(s) + ") should fail, got " + n.toString());
}

export function checkIPv4(): i32 {
  failures = 0;
  fmt("10.1.2.3", "10.1.2.3");
  fmt("0.0.0.0", "0.0.0.0");
  fmt("255.255.255.255", "255.255.255.255");
  bad(""); bad("1.2.3"); bad("1.2.3.4.5"); bad("256.1.1.1"); bad("01.2.3.4"); bad("1.2.3.04");
  bad("1..2.3"); bad("1.2.3."); bad(".1.2.3"); bad("a.b.c.d"); bad("1.2.3.-4"); bad("1.2.3.4 ");
  bad("1.2.3.4/24"); bad("1000.2.3.4"); bad("0x1.2.3.4");

  const a = ipOf("10.0.0.255");
  ok("isV4", a.isV4() && !a.isV6());
  eq("next carry", a.next().toString(), "10.0.1.0");
  eq("prev borrow", ipOf("10.0.1.0").prev().toString(), "10.0.0.255");
  eq("next leaves original", a.toString(), "10.0.0.255");
  eq("next wraps", ipOf("255.255.255.255").next().toString(), "0.0.0.0");
  eq("prev wraps", ipOf("0.0.0.0").prev().toString(), "255.255.255.255");
  eq("add 256", ipOf("10.0.0.1").add(256).toString(), "10.0.1.1");
  eq("add -2", ipOf("10.0.1.0").add(-2).toString(), "10.0.0.254");
  eq("add 2^32 wraps to same", ipOf("10.0.0.1").add(<i64>1 << 32).toString(), "10.0.0.1");
  ok("equals", ipOf("10.0.0.1").equals(ipOf("10.0.0.1")));
  ok("not equals", !ipOf("10.0.0.1").equals(ipOf("10.0.0.2")));
  eqI("compare <", ipOf("10.0.0.1").compare(ipOf("10.0.0.2")), -1);
  eqI("compare >", ipOf("10.1.0.0").compare(ipOf("10.0.255.255")), 1);
  eqI("compare =", ipOf("1.2.3.4").compare(ipOf("1.2.3.4")), 0);
  eqI("v4 before v6", ipOf("255.255.255.255").compare(ipOf("::")), -1);
  ok("v4 != mapped v6", !ipOf("1.2.3.4").equals(ipOf("::ffff:1.2.3.4")));
  eqI("toU32", ipOf("1.2.3.4").toU32(), 0x01020304);
  eq("fromU32", IP.fromU32(0xc0a80101).toString(), "192.168.1.1");
  eq("v4()", IP.v4(172, 16, 0, 1).toString(), "172.16.0.1");
  const bytes = ipOf("192.0.2.7").toBytes();
  eqI("toBytes len", bytes.length, 4);
  eq("fromBytes", IP.fromBytes(bytes)!.toString(), "192.0.2.7");

  const n = netOf("10.1.2.3/24");
  eq("toString keeps host bits", n.toString(), "10.1.2.3/24");
  eq("ip as written", n.ip.toString(), "10.1.2.3");
  eqI("prefix", n.prefix, 24);
  eq("network", n.network().toString(), "10.1.2.0");
  eq("broadcast", n.broadcast().toString(), "10.1.2.255");
  eq("mask", n.maskString(), "255.255.255.0");
  eq("networkCIDR", n.networkCIDR(), "10.1.2.0/24");
  ok("contains", n.contains(ipOf("10.1.2.200")) && n.contains(ipOf("10.1.2.0")) && n.contains(ipOf("10.1.2.255")));
  ok("not contains", !n.contains(ipOf("10.1.3.0")) && !n.contains(ipOf("10.1.1.255")));
  ok("other family", !n.contains(ipOf("::ffff:10.1.2.3")) && !n.contains(ipOf("::1")));
  eqI("size /24", n.size(), 256);
  eqI("hostBits", n.hostBits(), 8);

  const m = netOf("10.1.2.3/20");
  eq("/20 mask", m.maskString(), "255.255.240.0");
  eq("/20 network", m.network().toString(), "10.1.0.0");
  eq("/20 broadcast", m.broadcast().toString(), "10.1.15.255");
  eq("/0 mask", netOf("10.1.2.3/0").maskString(), "0.0.0.0");
  ok("/0 contains all", netOf("0.0.0.0/0").contains(ipOf("203.0.113.9")));
  eq("/0 broadcast", netOf("10.0.0.0/0").broadcast().toString(), "255.255.255.255");
  eq("/32 mask", netOf("10.1.2.3/32").maskString(), "255.255.255.255");
  eq("/32 broadcast", netOf("10.1.2.3/32").broadcast().toString(), "10.1.2.3");
  eq("/31 network", netOf("10.1.2.3/31").networkCIDR(), "10.1.2.2/31");
  eq("/1 mask", netOf("128.0.0.0/1").maskString(), "128.0.0.0");
  eqI("size /32", netOf("1.1.1.1/32").size(), 1);
  ok("isV4 net", n.isV4() && !n.isV6());
  ok("overlaps", netOf("10.0.0.0/8").overlaps(n) && n.overlaps(netOf("10.0.0.0/8")));
  ok("disjoint", !netOf("10.1.3.0/24").overlaps(n));
  badNet("10.1.2.3"); badNet("10.1.2.3/33"); badNet("10.1.2.3/"); badNet("10.1.2.3/024");
  badNet("10.1.2.3/-1"); badNet("/24"); badNet("10.1.2/24"); badNet("10.1.2.3/24/1"); badNet("10.1.2.3/ 24");
  return failures;
}

export function checkIPv6(): i32 {
  failures = 0;
  fmt("::", "::");
  fmt("::1", "::1");
  fmt("fe80::", "fe80::");
  fmt("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1");
  fmt("2001:DB8::1", "2001:db8::1");
  fmt("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1");
  fmt("0:0:0:0:0:0:0:0", "::");
  fmt("0:0:0:0:0:0:0:1", "::1");
  fmt("1:0:0:0:0:0:0:0", "1::");
  fmt("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1");   // single zero group stays
  fmt("2001:db8::1:1:1:1:1", "2001:db8:0:1:1:1:1:1");
  fmt("1:0:0:2:0:0:0:3", "1:0:0:2::3");                   // longest run wins
  fmt("1:0:0:1:0:0:1:1", "1::1:0:0:1:1");                 // first run on ties
  fmt("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8");
  fmt("1:2:3:4:5:6::8", "1:2:3:4:5:6:0:8");
  fmt("fe80::1:2", "fe80::1:2");
  fmt("FFFF:ffff:FFFF:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  fmt("::ffff:1.2.3.4", "::ffff:1.2.3.4");
  fmt("::ffff:0102:0304", "::ffff:1.2.3.4");
  fmt("64:ff9b::192.0.2.33", "64:ff9b::c000:221");
  fmt("::1.2.3.4", "::102:304");
  fmt("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304");
  bad(":"); bad(":::"); bad("1:2:3:4:5:6:7"); bad("1:2:3:4:5:6:7:8:9"); bad("1::2::3");
  bad("12345::"); bad("1:2:3:4:5:6:7::8"); bad("::1:"); bad(":1::"); bad("1:"); bad("g::");
  bad("fe80::1%eth0"); bad("::ffff:1.2.3"); bad("::ffff:1.2.3.256"); bad("1:2:3:4:5:6:7:1.2.3.4");
  bad("[::1]"); bad("::1.2.3.4:5"); bad("1:2:3:4:5:6:7:8::"); bad(" ::1");

  const a = ipOf("2001:db8::ffff");
  ok("isV6", a.isV6() && !a.isV4());
  eq("next carry", a.next().toString(), "2001:db8::1:0");
  eq("prev borrow", ipOf("2001:db8::1:0").prev().toString(), "2001:db8::ffff");
  eq("prev of :: wraps", ipOf("::").prev().toString(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  eq("next of all-ones wraps", ipOf("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").next().toString(), "::");
  eq("add 2^40", ipOf("2001:db8::").add(<i64>1 << 40).toString(), "2001:db8::100:0:0");
  eq("add across 64-bit boundary", ipOf("::ffff:ffff:ffff:ffff").add(1).toString(), "0:0:0:1::");
  eq("add negative across 64 bits", ipOf("0:0:0:1::").add(-1).toString(), "::ffff:ffff:ffff:ffff");
  eqI("compare", ipOf("fe80::1").compare(ipOf("fe80::2")), -1);
  ok("equals", ipOf("2001:db8::1").equals(ipOf("2001:0db8:0:0::1")));
  eq("to4 mapped", ipOf("::ffff:10.0.0.1").to4()!.toString(), "10.0.0.1");
  ok("to4 non-mapped", ipOf("2001:db8::1").to4() == null);
  eqI("toBytes len", ipOf("::1").toBytes().length, 16);
  eq("fromBytes", IP.fromBytes(ipOf("fe80::42").toBytes())!.toString(), "fe80::42");
  ok("fromBytes bad len", IP.fromBytes(new Uint8Array(5)) == null);

  const n = netOf("2001:db8::5/64");
  eq("toString", n.toString(), "2001:db8::5/64");
  eq("network", n.network().toString(), "2001:db8::");
  eq("broadcast", n.broadcast().toString(), "2001:db8::ffff:ffff:ffff:ffff");
  eq("mask", n.maskString(), "ffff:ffff:ffff:ffff::");
  eq("networkCIDR", n.networkCIDR(), "2001:db8::/64");
  ok("contains", n.contains(ipOf("2001:db8::ffff")) && n.contains(ipOf("2001:db8::ffff:ffff:ffff:ffff")));
  ok("not contains", !n.contains(ipOf("2001:db8:0:1::")) && !n.contains(ipOf("2001:db9::")));
  ok("other family", !n.contains(ipOf("10.0.0.1")));
  ok("isV6 net", n.isV6() && !n.isV4());
  eqI("size saturates", n.size(), <i64>u64.MAX_VALUE);
  eqI("size /120", netOf("fd00::/120").size(), 256);
  eq("/61 broadcast", netOf("2001:db8::/61").broadcast().toString(), "2001:db8:0:7:ffff:ffff:ffff:ffff");
  eq("/8 mask", netOf("fd00::/8").maskString(), "ff00::");
  eq("/0 mask", netOf("::/0").maskString(), "::");
  eq("/128 mask", netOf("::1/128").maskString(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  eq("/128 broadcast", netOf("2001:db8::1/128").broadcast().toString(), "2001:db8::1");
  eq("/127 networkCIDR", netOf("2001:db8::3/127").networkCIDR(), "2001:db8::2/127");
  eq("mapped CIDR", netOf("::ffff:10.0.0.1/120").networkCIDR(), "::ffff:10.0.0.0/120");
  ok("overlaps", netOf("fd00::/8").overlaps(netOf("fd00:1234::/64")));
  ok("cross-family never overlaps", !netOf("::/0").overlaps(netOf("0.0.0.0/0")));
  badNet("::/129"); badNet("::1"); badNet("::1/"); badNet("fe80::/064"); badNet("fe80::%1/64");
  return failures;
}
