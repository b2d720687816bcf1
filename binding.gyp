{
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions", "-O2"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2", "-std=gnu++17"],
    "cflags": ["-O3", "-fexceptions", "-pthread"],
    "cflags_cc": ["-O3", "-std=c++17", "-fexceptions", "-frtti", "-pthread", "-ffp-contract=fast"],
    "ldflags": ["-pthread"]
  },
  "targets": [
    {
      "target_name": "l2e",
      "sources": ["<!@(node scripts/native-sources.cjs)"]
    },
    {
      "target_name": "l2e_testing",
      "product_dir": "<(PRODUCT_DIR)/testing",
      "conditions": [
        ["'<!(node -p \"require('fs').existsSync('native/testing')\")'=='true'",
         {"sources": ["<!@(node scripts/native-sources.cjs testing)"]},
         {"type": "none"}]
      ]
    }
  ]
}
