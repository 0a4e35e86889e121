{
  "targets": [
    {
      "target_name": "cniwasm_native",
      "sources": ["host/kernel/native/addon.c"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    },
    {
      "target_name": "cniwasm_watchdog",
      "sources": ["host/sandbox/watchdog.cc"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-cast-function-type", "-O2"]
    }
  ]
}
