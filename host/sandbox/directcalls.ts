// ---- direct calls: synchronous glue without the async task machinery ---------
// jco (1.35) emits the component model's async (P3) task machinery for every
// call, even where every function is synchronous, as all of wit/plugin.wit's
// are (no async functions, streams, futures or resources): each core import
// goes through _lowerImportBackwardsCompat (a subtask, its start and result),
// each host trampoline creates a host task (createNewCurrentTask, the
// taskCreation block, enterSync, _withGlobalCurrentTaskMeta,
// _trackHostOperation, resolve/exit), each export a task of its own, with
// _debugLog calls building object literals all along; and every
// instantiation builds two lowering descriptors per import, which the
// synchronous path never reads. A CPU profile of the daemon put ~4 ms of a
// bridge ADD there.
//
// Here each of those calls is rewritten to go straight through: the core
// import is the trampoline itself (after the same may-leave check), the
// trampoline lifts its arguments, calls the host function and lowers the
// result, an export lowers, calls the core export, lifts, runs post-return.
// What is kept, byte for byte: the lifting and lowering code (so the lift
// guard's decoders, package.ts, still see every string), the may-leave
// check (no host call during post-return), the "cannot enter a trapped
// instance" check, the marking of a trap, the catch that turns a thrown
// {payload} into an `err` result and rethrows any other Error (a host
// TimeLimitReached still traps the guest), ComponentError for an export's
// `err`. What goes is bookkeeping nothing reads once no task is made.
//
// Fail closed: every rewrite matches jco's exact text (one match where one is
// expected), leaves no trace of the task machinery in the instance's code,
// and the result must compile; otherwise the glue is returned unmodified
// (still correct, only slower) with the reason, and the caller decides
// (the build refuses, package.ts).

import vm from 'node:vm';

export interface DirectCalls {
  src: string;
  /** core imports and exports rewritten (0 when skipped) */
  imports: number;
  exports: number;
  /** why the glue was left unmodified */
  skipped?: string;
}

class Shape extends Error {}
function fail(why: string): never { throw new Shape(why); }

/** Index of the character closing the bracket at `open` (skips strings,
 *  template literals and comments). */
function closing(src: string, open: number): number {
  const pairs: Record<string, string> = { '(': ')', '{': '}', '[': ']' };
  const stack: string[] = [];
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (pairs[c]) stack.push(pairs[c]);
    else if (c === ')' || c === '}' || c === ']') {
      if (stack.pop() !== c) fail('unbalanced brackets');
      if (stack.length === 0) return i;
    } else if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) { if (src[i] === '\\') i++; else if (src[i] === '\n') fail('unterminated string'); }
    } else if (c === '`') {
      for (i++; i < src.length && src[i] !== '`'; i++) {
        if (src[i] === '\\') i++;
        else if (src[i] === '$' && src[i + 1] === '{') i = closing(src, i + 1);
      }
    } else if (c === '/' && src[i + 1] === '/') {
      i = src.indexOf('\n', i);
      if (i < 0) fail('unterminated comment');
    } else if (c === '/' && src[i + 1] === '*') {
      i = src.indexOf('*/', i + 2) + 1;
      if (i <= 0) fail('unterminated comment');
    }
  }
  fail('unbalanced brackets');
}

/** Removes every `_debugLog(...);` statement (each on lines of its own). */
function withoutDebugLogs(body: string): string {
  let out = body;
  for (let at = out.indexOf('_debugLog('); at >= 0; at = out.indexOf('_debugLog(')) {
    const lineStart = out.lastIndexOf('\n', at) + 1;
    if (out.slice(lineStart, at).trim() !== '') fail('a _debugLog call inside an expression');
    const close = closing(out, at + '_debugLog'.length);
    if (out[close + 1] !== ';') fail('a _debugLog call not ending its statement');
    // what it is given is only evaluated, for nothing: no calls, no assignments
    const args = out.slice(at + '_debugLog('.length, close).replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/g, "''");
    if (/[(`=]/.test(args)) fail(`a _debugLog call with effects: ${out.slice(at, close + 1).slice(0, 120)}`);
    let end = close + 2;
    if (out[end] === '\n') end++;
    out = out.slice(0, lineStart) + out.slice(end);
  }
  return out;
}

/** Replaces the one match of `re` in `s` (none or several: fail). */
function once(s: string, re: RegExp, by: string | ((...m: string[]) => string), what: string): string {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
  const n = s.match(g)?.length ?? 0;
  if (n !== 1) fail(`${what}: ${n} matches, expected 1`);
  return s.replace(re, by as never);
}

/** `_withGlobalCurrentTaskMeta({ ..., fn: () => CALL })` (its one use left
 *  in `b`) -> CALL, where CALL is one call `f(...)` (its arguments the lifted
 *  values, as jco wrote them). */
function unwrap(b: string, shape: RegExp, callee: (f: string) => boolean, what: string): string {
  const key = '_withGlobalCurrentTaskMeta(';
  const at = b.indexOf(key);
  if (at < 0 || b.includes(key, at + 1)) fail(`${what}: not one call`);
  const open = at + key.length;
  if (b[open] !== '{') fail(`${what}: unexpected call`);
  const close = closing(b, open);
  if (b[close + 1] !== ')') fail(`${what}: unexpected call`);
  const call = shape.exec(b.slice(open, close + 1))?.[1];
  if (!call) fail(`${what}: unexpected call`);
  const f = /^([\w$]+)\(/.exec(call);
  if (!f || closing(call, f[0].length - 1) !== call.length - 1) fail(`${what}: not a single call`);
  if (!callee(f[1])) fail(`${what}: calls '${f[1]}'`);
  return b.slice(0, at) + call + b.slice(close + 2);
}

/** Names jco's task machinery goes by; none may be left in the rewritten code. */
const MACHINERY = /\b(?:task|subtask|parentTask|createTask|hostProvided|started)\b|createNewCurrentTask|getCurrentTask|_withGlobalCurrentTaskMeta|_trackHostOperation|_lowerImportBackwardsCompat|_suspendingImport|manuallyAsync|CURRENT_TASK_MAY_BLOCK|_debugLog/;

// the "none" error path of a trampoline and of an export's core call: its
// task bookkeeping goes, the trap is still marked and the error rethrown
const SYNC_CATCH = /\} catch \(err\) \{\s*_debugLog\('\[Instruction::Call(?:Interface|Wasm)\] error during sync call', \{[^{}]*\}\);\s*getOrCreateAsyncState\((\d+)\)\.markTrapped\(err\);\s*task\.setErrored\(err\);\s*task\.reject\(err\);\s*task\.exit\(\);\s*throw err;\s*\}/;
const syncCatch = (_m: string, idx: string) => `} catch (err) {\n      getOrCreateAsyncState(${idx}).markTrapped(err);\n      throw err;\n    }`;

// jco's host task of a trampoline, token by token (any whitespace between):
// literal text, and RegExps for what varies
const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const template = (parts: (string | RegExp)[]) => new RegExp('^\\s*' + parts.map((p) => (typeof p === 'string' ? escape(p) : p.source)).join('\\s*') + '\\s*$');
const HOST_TASK = template([
  'const hostProvided = true;', 'let parentTask;', 'let task;', 'let subtask;',
  'const createTask = () => {', 'const results = createNewCurrentTask({', /[^{}]*/, '});', 'task = results[0];', '};',
  'taskCreation: {', 'parentTask = getCurrentTask(', /\d+,/, '_getGlobalCurrentTaskMeta(', /\d+/, ')?.taskID,', ')?.task;',
  'if (!parentTask) {', 'createTask();', 'break taskCreation;', '}', 'createTask();',
  'if (hostProvided) {', 'subtask = parentTask.getLatestSubtask();', 'if (!subtask) {', /throw new Error\(`Missing subtask [^`]*`\);/, '}',
  'task.setParentSubtask(subtask);', '}', '}', 'const started = task.enterSync();',
]);

/** One host trampoline (`const _trampolineN = function(...) {...}`): lift,
 *  call, lower; no host task. `body` is the text from its start to
 *  `_trampolineN.fnName`. */
function directTrampoline(body: string, name: string, componentIdx: string, hostFn: (f: string) => boolean): string {
  let b = body;
  // the host task: created, linked to the caller's subtask, entered
  b = once(b, /\n[ \t]*const hostProvided = true;\n[\s\S]*?\n[ \t]*const started = task\.enterSync\(\);\n/, (m: string) => {
    // nothing but the task: the whole text is jco's template
    if (!HOST_TASK.test(m)) fail(`${name}: unexpected host task`);
    const opts = /createNewCurrentTask\(\{([^{}]*)\}\)/.exec(m)![1];
    for (const want of ['componentIdx: -1,', 'isAsync: false,', 'getCallbackFn: () => null,', 'callingWasmExport: false,']) {
      if (!opts.includes(want)) fail(`${name}: host task without '${want}'`);
    }
    return '\n';
  }, `${name}: host task`);
  // the host call itself, no longer wrapped
  b = unwrap(b, /^\{\s*componentIdx: task\.componentIdx\(\),\s*taskID: task\.id\(\),\s*fn: \(\) => _trackHostOperation\(\(\) => ([\s\S]*)\),\s*\}$/, hostFn, `${name}: host call`);
  if (SYNC_CATCH.test(b)) b = once(b, SYNC_CATCH, syncCatch, `${name}: error path`);
  b = once(b, /\n[ \t]*task\.resolve\(\[ret\]\);\n[ \t]*task\.exit\(\);\n/, '\n', `${name}: task end`);
  b = withoutDebugLogs(b);
  // the core import is this function: the may-leave check it went through moves in
  b = once(b, /^(const [\w$]+ = function\([\w$, ]*\) \{\n)/, (_m: string, head: string) => `${head}    _checkMayLeave(${componentIdx});\n`, `${name}: head`);
  if (MACHINERY.test(b)) fail(`${name}: task machinery left (${MACHINERY.exec(b)![0]})`);
  return b;
}

/** One export (`function add$1(arg0) {...}`): no task; `body` is its text. */
function directExport(body: string, name: string): string {
  let b = body;
  b = once(b, /\n[ \t]*const hostProvided = false;\n([ \t]*getOrCreateAsyncState\(\d+\)\.throwIfTrapped\(\);\n)([\s\S]*?)\n[ \t]*return _withGlobalCurrentTaskMeta\(\{\n[ \t]*taskID: task\.id\(\),\n[ \t]*componentIdx: task\.componentIdx\(\),\n[ \t]*fn: \(\) => \{\n[ \t]*try \{\n/, (_m: string, trapped: string, setup: string) => {
    if (!/^\s*const \[task, [\w$]+\] = createNewCurrentTask\(\{[^{}]*\}\);\s*task\.setCalleeIsAsync\(false\);\s*const started = task\.enterSync\(\);\s*CURRENT_TASK_MAY_BLOCK\.value = task\.mayBlock\(\) \? 1 : 0;\s*if \(\d+ ?!== null\) \{\s*task\.setReturnMemoryIdx\(\d+\);\s*task\.setReturnMemory\(\(\(\) => [\w$]+\)\(\)\);\s*\}\s*$/.test(setup)) fail(`${name}: unexpected export task`);
    const opts = /createNewCurrentTask\(\{([^{}]*)\}\)/.exec(setup)![1];
    for (const want of ['isAsync: false,', 'isManualAsync: false,', 'getCallbackFn: () => null,', 'callingWasmExport: true,']) {
      if (!opts.includes(want)) fail(`${name}: export task without '${want}'`);
    }
    return '\n' + trapped;
  }, `${name}: export task`);
  b = once(b, /\n[ \t]*\} catch \(err\) \{\n[ \t]*if \(!task\.isResolvedState\(\)\) \{\n[ \t]*task\.setErrored\(err\);\n[ \t]*task\.reject\(err\);\n[ \t]*\}\n[ \t]*if \(!task\.isExited\(\)\) \{ task\.exit\(\{ skipExclusiveLockCheck: true \}\); \}\n[ \t]*throw err;\n[ \t]*\}\n[ \t]*\},\n[ \t]*\}\);\n\s*\}$/, '\n  }', `${name}: export task end`);
  b = unwrap(b, /^\{\s*taskID: task\.id\(\),\s*componentIdx: task\.componentIdx\(\),\s*fn: \(\) => ([\s\S]*),\s*\}$/, (f) => /^exports\d+[A-Z][\w$]*$/.test(f), `${name}: core call`);
  b = once(b, SYNC_CATCH, syncCatch, `${name}: error path`);
  b = once(b, /\n[ \t]*task\.resolve\(\[[\w$.]*\]\);\n/, '\n', `${name}: task resolve`);
  b = once(b, /\n[ \t]*task\.exit\(\);\n/, '\n', `${name}: task exit`);
  b = withoutDebugLogs(b);
  if (MACHINERY.test(b)) fail(`${name}: task machinery left (${MACHINERY.exec(b)![0]})`);
  return b;
}

/** The lowering of one core import (`let trampolineN = ... ;`), checked to
 *  be the synchronous one, becomes the trampoline itself. */
function directImport(stmt: string, name: string, fn: string): string {
  const m = /^let [\w$]+ = ([\w$]+)\.manuallyAsync \? new WebAssembly\.Suspending\(_suspendingImport\((\d+), _lowerImportBackwardsCompat\.bind\(\s*null,\s*(\{[\s\S]*\}),\s*\)\)\) : _lowerImportBackwardsCompat\.bind\(\s*null,\s*(\{[\s\S]*\}),\s*\);$/.exec(stmt);
  if (!m || m[1] !== fn) fail(`${name}: unexpected import lowering`);
  for (const desc of [m[3], m[4]]) {
    const need = [`componentIdx: ${m[2]},`, 'isAsync: false,', `isManualAsync: ${fn}.manuallyAsync,`, 'funcTypeIsAsync: false,', `importFn: ${fn},`, 'getCallbackFn: () => null,', 'getPostReturnFn: () => null,'];
    for (const want of need) if (!desc.includes(want)) fail(`${name}: import lowering without '${want}'`);
    // the core import's own return value is ignored only when it has none:
    // results go through a pointer, or there are none
    if (!/\bhasResultPointer: true,/.test(desc) && !/\bresultLowerFns: \[\],/.test(desc)) fail(`${name}: an import with a flat result`);
  }
  return `let ${name} = ${fn};`;
}

/** What the rewrite must leave exactly as often as jco wrote it. */
const KEPT = ['.decode(', '_utf16AllocateAndEncode(', 'realloc0(', 'markTrapped(', 'getErrorPayload(', 'ComponentError(', 'throwIfTrapped()', 'postReturn0(', 'mayLeave = ', 'throwInvalidBool()', 'TextDecoder', '__cniGuardedDecoder'];
const count = (s: string, x: string): number => s.split(x).length - 1;

export function directCalls(src: string): DirectCalls {
  try {
    return rewrite(src);
  } catch (e) {
    if (e instanceof Shape) return { src, imports: 0, exports: 0, skipped: e.message };
    throw e;
  }
}

function rewrite(src: string): DirectCalls {
  const marker = 'let gen= (function* _initGenerator () {';
  const gen = src.indexOf(marker);
  if (gen < 0 || src.includes('_initGenerator', gen + marker.length)) fail('no single _initGenerator');
  // its task machinery is not defined where it is not used: nothing to rewrite
  if (!src.includes('function _lowerImportBackwardsCompat(') || !src.includes('function createNewCurrentTask(')) fail('no task machinery in this glue');
  if (/\.manuallyAsync\s*=[^=]/.test(src)) fail('an import marked manually async');
  let head = src.slice(0, gen);
  let inst = src.slice(gen);
  // the host functions: what the trampolines may call
  const hostFns = new Set<string>();
  for (const m of head.matchAll(/^[ \t]*const \{([^{}]*)\} = imports\['[^'\n]*'\];$/gm)) {
    for (const part of m[1].split(',')) hostFns.add(part.split(':').pop()!.trim());
  }
  const hostFn = (f: string) => hostFns.has(f);

  // host trampolines: `const _trampolineN = function(...) {` up to `_trampolineN.fnName = '...';`
  const trampolines: string[] = [];
  inst = inst.replace(/^([ \t]*)(const (_trampoline\d+) = function\([\w$, ]*\) \{\n[\s\S]*?\n)([ \t]*)(\3\.fnName = '[^'\n]*';)$/gm,
    (_m: string, ind: string, body: string, name: string, ind2: string, tail: string) => {
      trampolines.push(name);
      const idx = /\n[ \t]*const hostProvided = true;[\s\S]*?_getGlobalCurrentTaskMeta\((\d+)\)/.exec(body)?.[1] ?? fail(`${name}: no component index`);
      return ind + directTrampoline(body, name, idx, hostFn) + ind2 + tail;
    });
  const nDefs = inst.match(/\bconst _trampoline\d+ = /g)?.length ?? 0;
  if (nDefs !== trampolines.length) fail(`${nDefs} trampolines, ${trampolines.length} of the expected shape`);

  // core import lowerings
  let imports = 0;
  const lowering = /^[ \t]*let (trampoline\d+) = /gm;
  for (let m = lowering.exec(inst); m; m = lowering.exec(inst)) {
    const name = m[1];
    const start = m.index + m[0].indexOf('let ');
    // the statement ends at the `;` after the bracket closing its last bind(
    const ternary = inst.indexOf(' : _lowerImportBackwardsCompat.bind(', start);
    if (ternary < 0) fail(`${name}: unexpected import lowering`);
    const close = closing(inst, ternary + ' : _lowerImportBackwardsCompat.bind'.length);
    if (inst[close + 1] !== ';') fail(`${name}: unexpected import lowering`);
    const direct = directImport(inst.slice(start, close + 2), name, `_${name}`);
    inst = inst.slice(0, start) + direct + inst.slice(close + 2);
    lowering.lastIndex = start + direct.length;
    imports++;
  }
  if (imports !== trampolines.length) fail(`${imports} import lowerings for ${trampolines.length} trampolines`);

  // exports: `function NAME(ARGS) {` whose body starts with the export task
  const exportNames: string[] = [];
  inst = inst.replace(/^([ \t]*)(function ([\w$]+)\([\w$, ]*\) \{\n\s*const hostProvided = false;\n[\s\S]*?\n[ \t]*\},\n[ \t]*\}\);\n\s*\})$/gm,
    (_m: string, ind: string, body: string, name: string) => {
      if ((body.match(/createNewCurrentTask\(/g)?.length ?? 0) !== 1) fail(`${name}: not one export task`);
      exportNames.push(name);
      return ind + directExport(body, name);
    });
  const nTasks = inst.match(/callingWasmExport: true/g)?.length ?? 0;
  if (nTasks !== 0 || exportNames.length === 0) fail(`${exportNames.length} exports rewritten, ${nTasks} left`);
  // (what comments and messages say does not count)
  const code = inst.replace(/^[ \t]*\/\/.*$/gm, '').replace(/'(?:[^'\\\n]|\\.)*'/g, "''").replace(/_debugLog\(/g, '');
  const left = MACHINERY.exec(code);
  if (left) fail(`task machinery left in the instance: '${left[0]}' in ${JSON.stringify(code.slice(Math.max(0, left.index - 80), left.index + 40))}`);

  // what is left of _debugLog (the unused machinery) prints nothing, even with
  // JCO_DEBUG set: a CNI plugin's stdout is its result
  head = head.replace(/const _debugLog = \(\.\.\.args\) => \{\n[ \t]*if \(!globalThis\?\.process\?\.env\?\.JCO_DEBUG\) \{ return; \}\n[ \t]*console\.debug\(\.\.\.args\);\n[ \t]*\};/, 'const _debugLog = () => {};');

  const out = head + inst;
  // every lift, lowering, trap check, error conversion and post-return is still there
  for (const kept of KEPT) {
    if (count(out, kept) !== count(src, kept)) fail(`'${kept}' occurs ${count(out, kept)} times, in jco's glue ${count(src, kept)}`);
  }
  if (count(out, '_checkMayLeave(') !== count(src, '_checkMayLeave(') + imports) fail('a may-leave check lost');
  try {
    new vm.Script(`(function () {\n${out.replace(/^export /gm, '')}\n})`, { filename: 'plugin.cjs' });
  } catch (e) {
    fail(`the rewritten glue does not compile: ${(e as Error).message}`);
  }
  return { src: out, imports, exports: exportNames.length };
}
