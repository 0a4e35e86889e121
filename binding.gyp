{
  "targets": [
    {
      "target_name": "cniwasm_native",
      "sources": ["host/kernel/native/addon.c"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
