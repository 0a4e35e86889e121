// A guest's time limit without a thread per entry.
//
// vm.runInContext({timeout}) starts a watchdog thread (with its own libuv
// loop) on every entry and joins it on the way out: ~0.23 ms per entry on
// these machines, twice per CNI call in a daemon worker (the call, and the
// next call's instances made ahead). This keeps one watchdog thread per
// isolate (the main thread, each daemon worker) for the life of the
// isolate, armed and disarmed under a mutex:
//
//   guard(fn, timeoutMs)  calls fn(); if it is still running after timeoutMs
//                         the isolate's execution is terminated (as vm's
//                         watchdog does: V8 stops the guest wherever it is,
//                         also in a loop that never calls out), the
//                         termination is cancelled once fn has unwound, and
//                         guard throws an Error with code
//                         ERR_SCRIPT_EXECUTION_TIMEOUT, as vm does.
//
// Not re-entrant: a guard inside a guard throws (the sandbox nests delegated
// plugins under their caller's limit instead).
#include <node.h>
#include <v8.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

struct Watchdog {
  v8::Isolate* isolate;
  std::mutex m;
  std::condition_variable cv;
  bool armed = false;
  bool fired = false;
  bool quit = false;
  bool inside = false;
  Clock::time_point deadline;
  std::thread thread;

  explicit Watchdog(v8::Isolate* iso) : isolate(iso), thread([this] { Run(); }) {}

  void Run() {
    std::unique_lock<std::mutex> l(m);
    while (!quit) {
      if (!armed) { cv.wait(l); continue; }
      if (cv.wait_until(l, deadline) == std::cv_status::timeout && armed && Clock::now() >= deadline) {
        armed = false;
        fired = true;
        isolate->TerminateExecution();
      }
    }
  }

  void Arm(double ms) {
    std::lock_guard<std::mutex> l(m);
    deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(ms * 1000));
    armed = true;
    fired = false;
    cv.notify_one();
  }

  /** true when the time ran out (TerminateExecution was called) */
  bool Disarm() {
    std::lock_guard<std::mutex> l(m);
    armed = false;
    bool f = fired;
    fired = false;
    return f;
  }

  static void Stop(void* arg) {
    auto* w = static_cast<Watchdog*>(arg);
    {
      std::lock_guard<std::mutex> l(w->m);
      w->quit = true;
      w->cv.notify_one();
    }
    w->thread.join();
    delete w;
  }
};

void Throw(v8::Isolate* iso, const char* code, const char* msg) {
  v8::Local<v8::Context> ctx = iso->GetCurrentContext();
  v8::Local<v8::Object> err = v8::Exception::Error(v8::String::NewFromUtf8(iso, msg).ToLocalChecked()).As<v8::Object>();
  err->Set(ctx, v8::String::NewFromUtf8Literal(iso, "code"), v8::String::NewFromUtf8(iso, code).ToLocalChecked()).Check();
  iso->ThrowException(err);
}

void Guard(const v8::FunctionCallbackInfo<v8::Value>& args) {
  v8::Isolate* iso = args.GetIsolate();
  auto* w = static_cast<Watchdog*>(args.Data().As<v8::External>()->Value());
  if (args.Length() < 2 || !args[0]->IsFunction() || !args[1]->IsNumber()) {
    return Throw(iso, "ERR_INVALID_ARG_TYPE", "guard(fn, timeoutMs)");
  }
  double ms = args[1].As<v8::Number>()->Value();
  if (!(ms > 0 && ms <= 24.0 * 3600 * 1000)) return Throw(iso, "ERR_OUT_OF_RANGE", "guard: timeoutMs must be > 0 and at most a day");
  if (w->inside) return Throw(iso, "ERR_INVALID_STATE", "guard: already inside a guarded call");
  w->inside = true;
  v8::Local<v8::Context> ctx = iso->GetCurrentContext();
  v8::MaybeLocal<v8::Value> result;
  bool timedOut;
  {
    v8::TryCatch tc(iso);
    w->Arm(ms);
    result = args[0].As<v8::Function>()->Call(ctx, v8::Undefined(iso), 0, nullptr);
    timedOut = w->Disarm();
    w->inside = false;
    if (timedOut || tc.HasTerminated()) {
      // fired (or fired as fn returned): the guest is stopped either way
      iso->CancelTerminateExecution();
      timedOut = true;
    } else if (tc.HasCaught()) {
      tc.ReThrow();
      return;
    }
  }
  if (timedOut) {
    char msg[96];
    snprintf(msg, sizeof msg, "Script execution timed out after %.0fms", ms);
    return Throw(iso, "ERR_SCRIPT_EXECUTION_TIMEOUT", msg);
  }
  v8::Local<v8::Value> out;
  if (result.ToLocal(&out)) args.GetReturnValue().Set(out);
}

}  // namespace

// context-aware: loaded once per isolate (the main thread, each worker), each with its own watchdog
NODE_MODULE_INIT(/* exports, module, context */) {
  v8::Isolate* iso = context->GetIsolate();
  auto* w = new Watchdog(iso);
  node::AddEnvironmentCleanupHook(iso, Watchdog::Stop, w);
  v8::Local<v8::FunctionTemplate> t = v8::FunctionTemplate::New(iso, Guard, v8::External::New(iso, w));
  exports->Set(context, v8::String::NewFromUtf8Literal(iso, "guard"), t->GetFunction(context).ToLocalChecked()).Check();
}
